"""The canonical on-disk form of a WTAL data set, read by every stage.

Researchers arrive with several layouts (W-TALC/CO2-Net ``.npy`` annotations, UM's
``gt.json``, per-video feature files).  The converter in :mod:`.ingest` turns each of
them, once, into this one form, so no later stage has to know where the data came from
and no later stage ever unpickles anything.

A canonical data set is a folder holding three files::

    ground_truth.json     ActivityNet-style ground truth, all times in seconds
    features.npy          float32 (N_snippets_total, D): every video's snippets, packed
    features_index.json   where each video's rows are in features.npy

``ground_truth.json``::

    {
      "schema_version": 1,
      "dataset": "thumos14",            # registry name; synthetic sets have their own
      "synthetic": false,               # true for generated data, never for a real set
      "classes": ["BaseballPitch", ...],
      "snippet_seconds": 0.64,          # seconds covered by one feature row (16 / 25)
      "frames_per_snippet": 16, "feature_fps": 25.0,
      "source": "free text: where it was converted from",
      "database": {
        "<video_id>": {
          "subset": "train" | "test",   # role in the protocol (THUMOS14's validation
          "original_subset": "validation",  # split is the training set)
          "duration": 123.4,            # seconds
          "fps": 30.0,                  # original video fps, or null when unknown
          "labels": ["CliffDiving"],    # video-level labels (weak supervision)
          "annotations": [{"label": "CliffDiving", "segment": [12.3, 15.0]}]
        }
      },
      "ambiguous": {"<video_id>": [[start, end], ...]}   # seconds; may be empty
    }

The ``database`` part is the official ActivityNet ground-truth format, so the file can
be handed to :mod:`evaluation` directly.

``features_index.json``::

    {"schema_version": 1, "feature_dim": 2048,
     "modalities": {"rgb": [0, 1024], "flow": [1024, 2048]},
     "videos": {"<video_id>": [offset, num_snippets]}}

Packing all snippets in one array lets the trainer memory-map the set and move it to a
GPU in one copy; the index recovers each video's (T, D) array as a view.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.errors import InputError
from wtal_common.io import atomic_output, atomic_write_bytes, atomic_write_json  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1
GROUND_TRUTH_FILE = "ground_truth.json"
FEATURES_FILE = "features.npy"
FEATURES_INDEX_FILE = "features_index.json"
SUBSETS = ("train", "test")


class DatasetError(InputError):
    """Bad input data; the message names the file and, where relevant, the video."""


def validate_ground_truth(gt: Mapping[str, Any], source: str = GROUND_TRUTH_FILE) -> None:
    """Check a canonical ground truth; raise :class:`DatasetError` naming file and video."""
    for key in ("schema_version", "dataset", "classes", "snippet_seconds", "database"):
        if key not in gt:
            raise DatasetError(f"{source}: missing top-level key '{key}'")
    if gt["schema_version"] != SCHEMA_VERSION:
        raise DatasetError(f"{source}: schema_version {gt['schema_version']} != {SCHEMA_VERSION}")
    classes = set(gt["classes"])
    if len(classes) != len(gt["classes"]):
        raise DatasetError(f"{source}: duplicate class names in 'classes'")
    if not (isinstance(gt["snippet_seconds"], (int, float)) and gt["snippet_seconds"] > 0):
        raise DatasetError(f"{source}: snippet_seconds must be a positive number")
    for video_id, entry in gt["database"].items():
        where = f"{source}: video '{video_id}'"
        if entry.get("subset") not in SUBSETS:
            raise DatasetError(f"{where}: subset {entry.get('subset')!r} is not one of {SUBSETS}")
        duration = entry.get("duration")
        if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
            raise DatasetError(f"{where}: duration {duration!r} must be a positive number of seconds")
        for label in entry.get("labels", []):
            if label not in classes:
                raise DatasetError(f"{where}: label {label!r} is not in the class list")
        for ann in entry.get("annotations", []):
            if ann.get("label") not in classes:
                raise DatasetError(f"{where}: annotation label {ann.get('label')!r} is not in the class list")
            start, end = ann["segment"]
            if not (math.isfinite(start) and math.isfinite(end) and end >= start):
                raise DatasetError(f"{where}: bad segment {ann['segment']!r}")


def write_ground_truth(directory: str | os.PathLike, gt: Mapping[str, Any]) -> Path:
    path = Path(directory) / GROUND_TRUTH_FILE
    validate_ground_truth(gt, str(path))
    atomic_write_json(path, gt)
    return path


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`DatasetError` naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def load_ground_truth(path: str | os.PathLike) -> dict[str, Any]:
    """Load ``ground_truth.json`` (a file, or the canonical folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / GROUND_TRUTH_FILE
    gt = read_json(path, "ground truth file")
    validate_ground_truth(gt, str(path))
    return gt


def videos_in_subset(gt: Mapping[str, Any], subset: str) -> list[str]:
    """Video ids of one subset, sorted, so every stage iterates in the same order."""
    return sorted(v for v, e in gt["database"].items() if e["subset"] == subset)


def validate_features(video_id: str, array: np.ndarray, feature_dim: int | None, source: str) -> np.ndarray:
    """Return ``array`` as float32 (T, D) or raise naming the video and the file."""
    array = np.asarray(array)
    where = f"{source}: video '{video_id}'"
    if array.ndim != 2:
        raise DatasetError(f"{where}: features must be 2-D (snippets, dims), got shape {array.shape}")
    if array.shape[0] == 0:
        raise DatasetError(f"{where}: has zero snippets")
    if feature_dim is not None and array.shape[1] != feature_dim:
        raise DatasetError(f"{where}: feature dimension {array.shape[1]} != expected {feature_dim}")
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{where}: features have non-numeric dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise DatasetError(f"{where}: {bad} snippet(s) contain NaN or inf")
    return array


def write_features(
    directory: str | os.PathLike,
    features: Mapping[str, np.ndarray],
    modalities: Mapping[str, tuple[int, int]] | None = None,
    source: str = "features",
    shapes: Mapping[str, tuple[int, int]] | None = None,
) -> Path:
    """Pack per-video (T, D) arrays into ``features.npy`` + ``features_index.json``.

    Written through temporary files and renamed, the index last, so a crash never leaves
    an index that points into a truncated array.  Without ``shapes`` each video is read
    twice (validate to size the file, then copy); with the (T, D) of every video known
    ahead, each is read once, so a mapping that computes features on access (the
    synthetic generator) computes them once.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    video_ids = sorted(features)
    if not video_ids:
        raise DatasetError(f"{source}: no videos to write")
    if shapes is None:
        feature_dim = None
        lengths = {}
        for vid in video_ids:
            arr = validate_features(vid, features[vid], feature_dim, source)
            feature_dim, lengths[vid] = arr.shape[1], int(arr.shape[0])
    else:
        feature_dim = int(shapes[video_ids[0]][1])
        lengths = {vid: int(shapes[vid][0]) for vid in video_ids}
    index: dict[str, list[int]] = {}
    offset = 0
    for vid in video_ids:
        index[vid] = [offset, lengths[vid]]
        offset += lengths[vid]
    with atomic_output(directory / FEATURES_FILE, suffix=".npy") as tmp:
        packed = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(offset, feature_dim))
        for vid in video_ids:
            start, length = index[vid]
            arr = features[vid] if shapes is None else validate_features(vid, features[vid], feature_dim, source)
            if arr.shape[0] != length:
                raise DatasetError(f"{source}: video '{vid}': {arr.shape[0]} snippets, expected {length}")
            packed[start : start + length] = arr
        packed.flush()
        del packed
    if modalities is None and feature_dim == 2048:
        modalities = {"rgb": (0, 1024), "flow": (1024, 2048)}
    atomic_write_json(
        directory / FEATURES_INDEX_FILE,
        {
            "schema_version": SCHEMA_VERSION,
            "feature_dim": int(feature_dim),
            "modalities": {k: list(v) for k, v in (modalities or {}).items()},
            "videos": index,
        },
    )
    return directory / FEATURES_FILE


@dataclass
class FeatureStore:
    """Read side of the packed features: ``store[video_id]`` is a (T, D) float32 view."""

    packed: np.ndarray
    index: dict[str, tuple[int, int]]
    feature_dim: int
    modalities: dict[str, tuple[int, int]]

    @classmethod
    def open(cls, directory: str | os.PathLike, mmap: bool = True) -> FeatureStore:
        directory = Path(directory)
        index_path = directory / FEATURES_INDEX_FILE
        array_path = directory / FEATURES_FILE
        for path in (index_path, array_path):
            if not path.exists():
                raise DatasetError(f"{path}: not found (run the ingest or synth command first)")
        meta = read_json(index_path, "features index")
        try:
            feature_dim = int(meta["feature_dim"])
            index = {v: (int(o), int(n)) for v, (o, n) in meta["videos"].items()}
            modalities = {k: tuple(v) for k, v in meta.get("modalities", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{index_path}: not a features index ({exc!r})") from exc
        if not index:
            raise DatasetError(f"{index_path}: lists no videos")
        shape = _check_npy_size(array_path, index_path, feature_dim, max(o + n for o, n in index.values()))
        packed = np.load(array_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        assert packed.shape == shape, (packed.shape, shape)  # read from the same header
        return cls(packed, index, feature_dim, modalities)

    def __getitem__(self, video_id: str) -> np.ndarray:
        if video_id not in self.index:
            raise DatasetError(f"features: video '{video_id}' has no features")
        offset, length = self.index[video_id]
        return self.packed[offset : offset + length]

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.index

    @property
    def videos(self) -> list[str]:
        return sorted(self.index)


def _check_npy_size(array_path: Path, index_path: Path, feature_dim: int, rows_needed: int) -> tuple[int, ...]:
    """Check ``features.npy``'s header and byte size against its index, before it is mapped.

    A truncated file (a copy cut short, a full disk) would otherwise surface as numpy's
    "mmap length is greater than file size"; here it is a :class:`DatasetError` naming the
    file and the expected and actual sizes.  Returns the array shape from the header.
    """
    try:
        with open(array_path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            # 3.0 differs from 2.0 only in the header's text encoding (utf-8 vs latin-1)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            header_bytes = handle.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise DatasetError(f"{array_path}: not a readable .npy file ({exc})") from exc
    if dtype.hasobject:
        raise DatasetError(f"{array_path}: holds Python objects (dtype {dtype}), expected float32 numbers")
    if len(shape) != 2 or shape[1] != feature_dim:
        raise DatasetError(f"{array_path}: shape {shape} disagrees with feature_dim {feature_dim} in {index_path}")
    if shape[0] < rows_needed:
        raise DatasetError(f"{array_path}: has {shape[0]} rows, {index_path} needs {rows_needed}")
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    actual = os.path.getsize(array_path)
    if actual < expected:
        raise DatasetError(
            f"{array_path}: truncated: {actual} bytes, expected {expected} bytes "
            f"({shape[0]} rows x {shape[1]} {dtype} values after a {header_bytes}-byte header, "
            f"{rows_needed} rows needed by {index_path}); re-run the ingest or synth command"
        )
    return tuple(shape)


def check_consistency(gt: Mapping[str, Any], store: FeatureStore, source: str) -> None:
    """Every ground-truth video must have features, and no feature may lack a video."""
    missing = sorted(set(gt["database"]) - set(store.index))
    if missing:
        raise DatasetError(f"{source}: {len(missing)} video(s) have no features, e.g. '{missing[0]}'")
    extra = sorted(set(store.index) - set(gt["database"]))
    if extra:
        raise DatasetError(f"{source}: features for unknown video(s), e.g. '{extra[0]}'")
