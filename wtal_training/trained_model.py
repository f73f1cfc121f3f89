"""A trained localizer back from its checkpoint: the one loader of ``evaluate`` and ``predict``.

The checkpoint holds the inference model's weights (the base method, plus the MLLM4WTAL
localization head for a plug-in run) and, in metadata, the config, class list, feature
width and snippet length it was trained with (:mod:`.checkpoint`).  Rebuilding the model
from that config and loading the weights strictly is the first step of the single
inference path checkpoint -> model -> outputs -> proposals (:func:`.inference.detect`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wtal_common.errors import ConfigError

from .checkpoint import CheckpointError, code_version, load_checkpoint
from .config import CONFIG_FORMAT, TrainConfig, config_from_dict
from .config_legacy import stored_proposal_source
from .models import build_base_method
from .objectives import OBJECTIVES

LEGACY_OBJECTIVES = {"base": "plain", "mllm4wtal": "mllm4wtal"}  # format 1's `inference_model`

log = logging.getLogger("wtal_training")


@dataclass
class TrainedModel:
    """The inference model of a checkpoint, on a device, with what it was trained on."""

    path: Path
    model: nn.Module
    config: TrainConfig
    classes: list[str]
    feature_dim: int
    snippet_seconds: float | None  # of the training features; None in checkpoints that lack it
    metadata: dict[str, Any]
    proposal_source: str = "auto"  # the default of evaluate/predict (older configs may store another)

    def check_fits(self, classes: Sequence[str] | None, feature_dim: int, source: str) -> None:
        """Refuse data of another feature width, or (when ``classes`` is given) another class list."""
        if classes is not None and list(classes) != self.classes:
            raise CheckpointError(
                f"{self.path}: trained on {len(self.classes)} classes, {source} has {len(classes)} "
                "(or a different class list)"
            )
        if feature_dim != self.feature_dim:
            raise CheckpointError(f"{self.path}: feature_dim {self.feature_dim} != data {feature_dim} ({source})")


def resolve_device(choice: str) -> str:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU falls back to cpu."""
    return "cuda" if choice in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the checkpoint's inference model and load its weights (strictly).

    Raises :class:`CheckpointError` (exit 2) naming the file when it is missing, unreadable,
    of a format this code does not read, or its config or weights do not fit the code.
    """
    path = Path(path)
    state, meta = load_checkpoint(path)
    if meta.get("code_version") != code_version():
        log.info("%s: written by code %s, read by code %s", path, meta.get("code_version"), code_version())
    config_format = CONFIG_FORMAT if int(meta.get("format_version", 1)) >= 2 else 1
    try:
        config = config_from_dict(meta["config"], config_format)
        objective = OBJECTIVES[meta.get("objective") or LEGACY_OBJECTIVES[meta.get("inference_model", "base")]]
        feature_dim, classes = int(meta["feature_dim"]), list(meta["classes"])
        model = objective.build_inference_model(config, build_base_method(config, feature_dim, len(classes)))
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: its stored config does not fit this code ({exc})") from exc
    source = stored_proposal_source(meta["config"]) if config_format == 1 else "auto"
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing, unexpected or mis-shaped weights
        raise CheckpointError(f"{path}: weights do not fit the {config.method} model ({exc})") from exc
    model.to(device).eval()
    seconds = meta.get("snippet_seconds")
    seconds = None if seconds is None else float(seconds)
    return TrainedModel(path, model, config, classes, feature_dim, seconds, meta, source)
