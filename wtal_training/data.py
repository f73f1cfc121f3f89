"""What a training command puts on its device before any seed trains: the accelerator, the
canonical data set (ground truth and packed train/test features) and the text priors.

The ground truth is read once per command: the CLI reads it to learn the data set's family
(whose defaults apply) and hands it to :func:`load_data`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wtal_common.errors import ConfigError
from wtal_data.canonical import DatasetError, FeatureStore, check_consistency, load_ground_truth, videos_in_subset

from .sampler import DeviceFeatureSet

log = logging.getLogger("wtal_training")


@dataclass
class LoadedData:
    """A canonical data set read once: ground truth plus train/test features on a device."""

    directory: Path
    gt: dict
    train: DeviceFeatureSet
    test: DeviceFeatureSet

    @property
    def num_classes(self) -> int:
        return len(self.gt["classes"])


def load_data(directory: str | Path, device: torch.device | str, gt: Mapping[str, Any] | None = None) -> LoadedData:
    """Read and check a canonical data set; raise :class:`DatasetError` on bad input.

    ``gt``: its ``ground_truth.json`` when the caller has read it already (it is then not
    read again)."""
    directory = Path(directory)
    gt = dict(gt) if gt is not None else load_ground_truth(directory)
    store = FeatureStore.open(directory)
    check_consistency(gt, store, str(directory))
    if not gt["classes"]:
        raise DatasetError(f"{directory / 'ground_truth.json'}: empty class list")
    split = {}
    for subset in ("train", "test"):
        ids = videos_in_subset(gt, subset)
        if not ids:
            raise DatasetError(f"{directory / 'ground_truth.json'}: the '{subset}' split is empty")
        split[subset] = DeviceFeatureSet(store, gt, ids, device, source=f"{directory / 'features.npy'} ({subset})")
    unlabeled = [v for v in split["train"].video_ids if not gt["database"][v].get("labels")]
    if len(unlabeled) == len(split["train"]):
        raise DatasetError(f"{directory / 'ground_truth.json'}: no training video has a label")
    return LoadedData(directory, gt, split["train"], split["test"])


def make_accelerator(device: str, mixed_precision: str):
    """An accelerate ``Accelerator`` for ``device`` (auto | cpu | cuda)."""
    from accelerate import Accelerator

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return Accelerator(cpu=cpu, mixed_precision="no" if cpu else mixed_precision)


def load_text_priors(directory: str | None, classes: Sequence[str] | None = None):
    """Text priors with ``tp.classes`` in the data set's label order (``classes``).

    Priors built without ``--ground-truth`` are in sorted class order; loading them with the
    data set's class list reorders them, and a different class set is a ``ClassOrderError``
    (exit 2), so KSM query c and CSR sentences of class c always mean label index c.
    """
    if directory is None:
        return None
    from prior_generation.text_priors import load_text_priors as _load

    return _load(directory, list(classes) if classes is not None else None)


def check_text_priors_classes(text_priors: Any, classes: Sequence[str]) -> None:
    """Label index c must be class c of the priors (KSM query c, CSR sentences of class c)."""
    if text_priors is not None and list(text_priors.classes) != list(classes):
        from prior_generation.text_priors import ClassOrderError

        raise ClassOrderError(f"text priors classes {list(text_priors.classes)} != data set classes {list(classes)}")
