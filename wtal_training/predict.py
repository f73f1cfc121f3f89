"""``predict``: a trained checkpoint on new videos' features -> action segments in seconds.

Each ``--features`` PATH is one of

* a per-video ``<video>.npy`` file, (T, D) snippets x feature dims; the video id is the stem;
* a folder of such files;
* the OUTPUT folder of ``python -m wtal_data extract`` (``rgb/<video>.npy`` and
  ``flow/<video>.npy``, (T, 1024) each): RGB then flow are concatenated and cropped to the
  shorter stream by the ingest code itself (:func:`wtal_data.ingest.load_rgb_flow_features`);
* a canonical data set folder (``ground_truth.json`` + packed features): all its videos, or
  one subset with ``--subset``; its annotations then appear in the timelines.

Every input goes through the inference path of ``evaluate`` (:func:`.inference.detect`), and
the per-video results are then cut to the ``top_n`` best with score >= ``min_score``.
Snippet length, in seconds: ``--snippet-seconds``, else what the inputs declare (a canonical
set's ``snippet_seconds``, an extract folder's ``settings.json``), else the checkpoint's;
inputs that declare different lengths are an error.  A video given as features has no known
duration: it is taken as T x snippet seconds (a canonical set's own duration is used as is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.errors import ConfigError
from wtal_data.canonical import (
    FEATURES_FILE,
    GROUND_TRUTH_FILE,
    DatasetError,
    FeatureStore,
    check_consistency,
    load_ground_truth,
    read_json,
    validate_features,
    videos_in_subset,
)
from wtal_data.ingest_features import load_rgb_flow_features

from .inference import detect
from .sampler import DeviceFeatureSet
from .trained_model import TrainedModel

log = logging.getLogger("wtal_training")

DEFAULT_TOP_N = 100  # detections kept per video (0: all); ActivityNet's results limit
EXTRACT_SETTINGS_FILE = "settings.json"  # written by `python -m wtal_data extract` (wtal_data/extraction/extract.py)


@dataclass
class PredictionInputs:
    """Per-video features gathered from every ``--features`` PATH, in the order given."""

    features: dict[str, np.ndarray] = field(default_factory=dict)  # video id -> (T, D) float32
    sources: dict[str, str] = field(default_factory=dict)  # video id -> the file(s) it was read from
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # video id -> canonical gt entry, when known
    declared_seconds: dict[str, float] = field(default_factory=dict)  # input -> snippet length it declares
    synthetic: set[str] = field(default_factory=set)  # ids from generated (synthetic) data sets

    def add(self, video_id: str, array: np.ndarray, source: str) -> None:
        if video_id in self.features:
            raise DatasetError(f"{source}: video '{video_id}' was already read from {self.sources[video_id]}")
        self.features[video_id], self.sources[video_id] = array, source


def read_inputs(paths: Sequence[str | Path], subset: str | None = None) -> PredictionInputs:
    """Read every PATH (see the module docstring); bad files raise errors naming them."""
    inputs = PredictionInputs()
    canonical_seen = False
    for path in map(Path, paths):
        if path.is_file():
            inputs.add(path.stem, read_npy(path), str(path))
        elif (path / GROUND_TRUTH_FILE).is_file():
            read_canonical(path, subset, inputs)
            canonical_seen = True
        elif (path / "rgb").is_dir() and (path / "flow").is_dir():
            read_extract_output(path, inputs)
        elif path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise DatasetError(
                    f"{path}: no <video>.npy files, rgb/ + flow/ folders or {GROUND_TRUTH_FILE} in this folder"
                )
            for file in files:
                inputs.add(file.stem, read_npy(file), str(file))
        else:
            raise DatasetError(f"{path}: not found")
    if subset is not None and not canonical_seen:
        raise ConfigError("--subset selects videos of a canonical data set, and no --features PATH is one")
    return inputs


def read_npy(path: Path) -> np.ndarray:
    """One plain (non-pickled) ``.npy`` of (T, D) finite numbers, as float32."""
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, ... for bad files
        raise DatasetError(f"{path}: cannot be read as a plain .npy array ({exc})") from exc
    return validate_features(path.stem, array, None, str(path))


def read_extract_output(directory: Path, inputs: PredictionInputs) -> None:
    """``extract``'s OUTPUT: rgb/ + flow/ per video, concatenated as ingest does."""
    rgb, flow = directory / "rgb", directory / "flow"
    video_ids = sorted(p.stem for p in rgb.glob("*.npy"))
    if not video_ids:
        raise DatasetError(f"{rgb}: no <video>.npy files")
    for video_id, array in load_rgb_flow_features([rgb], [flow], video_ids, feature_dim=None).items():
        inputs.add(video_id, array, f"{rgb / video_id}.npy + {flow / video_id}.npy")
    settings_path = directory / EXTRACT_SETTINGS_FILE
    if settings_path.is_file():
        settings = read_json(settings_path, "extraction settings")
        try:
            inputs.declared_seconds[str(settings_path)] = float(settings["snippet_frames"]) / float(settings["fps"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise DatasetError(f"{settings_path}: no valid 'snippet_frames' and 'fps' ({exc!r})") from exc


def read_canonical(directory: Path, subset: str | None, inputs: PredictionInputs) -> None:
    """All videos of a canonical data set (or one subset), with their ground truth."""
    gt = load_ground_truth(directory)
    store = FeatureStore.open(directory)
    check_consistency(gt, store, str(directory))
    video_ids = sorted(gt["database"]) if subset is None else videos_in_subset(gt, subset)
    if not video_ids:
        raise DatasetError(f"{directory / GROUND_TRUTH_FILE}: no video in subset '{subset}'")
    source = str(directory / FEATURES_FILE)
    for video_id in video_ids:
        inputs.add(video_id, validate_features(video_id, store[video_id], None, source), source)
        inputs.known[video_id] = gt["database"][video_id]
        if gt.get("synthetic"):
            inputs.synthetic.add(video_id)
    inputs.declared_seconds[str(directory / GROUND_TRUTH_FILE)] = float(gt["snippet_seconds"])


def resolve_snippet_seconds(explicit: float | None, inputs: PredictionInputs, trained: TrainedModel) -> float:
    """One snippet length for the command: flag, else the inputs', else the checkpoint's."""
    declared = dict(inputs.declared_seconds)
    if explicit is not None:
        if explicit <= 0:
            raise ConfigError(f"--snippet-seconds must be positive, got {explicit}")
        declared["--snippet-seconds"] = float(explicit)
    values = sorted(set(declared.values()))
    if len(values) > 1:
        listed = ", ".join(f"{where}: {seconds:g}" for where, seconds in declared.items())
        raise ConfigError(f"the inputs disagree on the snippet length in seconds ({listed})")
    seconds = values[0] if values else trained.snippet_seconds
    if seconds is None:
        raise ConfigError(f"{trained.path}: records no snippet length: pass --snippet-seconds")
    if trained.snippet_seconds is not None and not np.isclose(seconds, trained.snippet_seconds):
        log.warning(
            "snippets of %g s, but %s was trained on snippets of %g s: segments are in the inputs' seconds",
            seconds,
            trained.path,
            trained.snippet_seconds,
        )
    return float(seconds)


def check_feature_widths(inputs: PredictionInputs, trained: TrainedModel) -> None:
    """Every video must have the feature width the checkpoint was trained on."""
    for video_id, array in inputs.features.items():
        if array.shape[1] != trained.feature_dim:
            raise DatasetError(
                f"{inputs.sources[video_id]}: video '{video_id}' has {array.shape[1]} feature dims, but "
                f"{trained.path} was trained on {trained.feature_dim} (features from another extractor or stream?)"
            )


def build_ground_truth(inputs: PredictionInputs, classes: Sequence[str], snippet_seconds: float) -> dict[str, Any]:
    """What post-processing and the timelines read: class names, snippet length, durations,
    and the annotations where they are known (a video of feature files has no
    ``annotations`` key: its ground truth is unknown, not empty)."""
    database = {}
    for video_id, array in inputs.features.items():
        if video_id in inputs.known:
            database[video_id] = {**inputs.known[video_id], "synthetic": video_id in inputs.synthetic}
        else:
            database[video_id] = {"duration": round(array.shape[0] * snippet_seconds, 3)}
    return {"classes": list(classes), "snippet_seconds": snippet_seconds, "database": database}


def to_device(inputs: PredictionInputs, classes: Sequence[str], device: str) -> DeviceFeatureSet:
    """The videos packed on the device, as the engine's inference reads them."""
    video_ids = list(inputs.features)
    lengths = [inputs.features[v].shape[0] for v in video_ids]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    packed = np.concatenate([inputs.features[v] for v in video_ids]).astype(np.float32, copy=False)
    index = {v: (int(o), int(n)) for v, o, n in zip(video_ids, offsets, lengths)}
    store = FeatureStore(packed, index, int(packed.shape[1]), {})
    unlabeled = {"classes": list(classes), "database": {v: {} for v in video_ids}}
    return DeviceFeatureSet(store, unlabeled, video_ids, device, source="--features")


def select_detections(predictions: dict[str, Any], top_n: int, min_score: float | None) -> dict[str, Any]:
    """Each video's ``top_n`` best detections (0: all) whose score is at least ``min_score``."""
    if top_n < 0:
        raise ConfigError(f"--top-n must be 0 (all) or positive, got {top_n}")
    results = {}
    for video_id, items in predictions["results"].items():
        ranked = sorted(items, key=lambda r: -r["score"])  # already sorted; stable, so a no-op
        if min_score is not None:
            ranked = [r for r in ranked if r["score"] >= min_score]
        results[video_id] = ranked[:top_n] if top_n else ranked
    return {**predictions, "results": results}


@dataclass
class Prediction:
    """What ``predict`` computed: per-video model outputs, the results JSON, the ground truth it used."""

    outputs: dict[str, dict[str, np.ndarray]]
    predictions: dict[str, Any]
    gt: dict[str, Any]


def predict(
    trained: TrainedModel,
    paths: Sequence[str | Path],
    subset: str | None = None,
    snippet_seconds: float | None = None,
    top_n: int = DEFAULT_TOP_N,
    min_score: float | None = None,
    device: str = "cpu",
    source: str = "auto",
) -> Prediction:
    """Read the inputs, check them against the checkpoint, run the shared inference path
    (``source``: which proposals are scored, as ``evaluate --proposal-source``)."""
    if top_n < 0:
        raise ConfigError(f"--top-n must be 0 (all) or positive, got {top_n}")
    inputs = read_inputs(paths, subset)
    seconds = resolve_snippet_seconds(snippet_seconds, inputs, trained)
    check_feature_widths(inputs, trained)
    gt = build_ground_truth(inputs, trained.classes, seconds)
    outputs, predictions = detect(trained.model, to_device(inputs, trained.classes, device), gt, trained.config, source)
    predictions = select_detections(predictions, top_n, min_score)
    predictions["provenance"] = {
        "checkpoint": str(trained.path),
        "code_version": trained.metadata.get("code_version"),
        "trained_on": trained.metadata.get("dataset"),
        "snippet_seconds": seconds,
        "top_n": top_n,
        "min_score": min_score,
    }
    return Prediction(outputs, predictions, gt)
