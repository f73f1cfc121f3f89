"""The canonical on-disk form of a WTAL data set, read by every stage.

Researchers arrive with several layouts (W-TALC/CO2-Net ``.npy`` annotations, UM's
``gt.json``, per-video feature files).  The converter in :mod:`.ingest` turns each of
them, once, into this one form, so no later stage has to know where the data came from
and no later stage ever unpickles anything.

A canonical data set is a folder holding three files::

    ground_truth.json     ActivityNet-style ground truth, all times in seconds
    features.npy          float32 (N_snippets_total, D): every video's snippets, packed
    features_index.json   where each video's rows are in features.npy

The contract of the two JSON files is a JSON Schema each, shipped in this package and
used by the readers and writers here: ``schemas/ground_truth.schema.json`` (fields,
types, the ``family`` field and its fallback for older files) and
``schemas/features_index.schema.json``.  The code adds what a schema cannot say
(labels in the class list, unique class names, finite numbers, start <= end, the array's
shape agreeing with the index).  Every error names the file, and the video where there is one.

Packing all snippets in one array lets the trainer memory-map the set and move it to a
GPU in one copy; the index recovers each video's (T, D) array as a view.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator

from wtal_common.errors import InputError
from wtal_common.io import atomic_output, atomic_write_bytes, atomic_write_json  # noqa: F401 (re-exported)

SCHEMA_VERSION = 1
GROUND_TRUTH_FILE = "ground_truth.json"
FEATURES_FILE = "features.npy"
FEATURES_INDEX_FILE = "features_index.json"
SUBSETS = ("train", "test")
SCHEMA_DIR = Path(__file__).with_name("schemas")

log = logging.getLogger(__name__)


class DatasetError(InputError):
    """Bad input data; the message names the file and, where relevant, the video."""


@functools.cache
def schema_validator(name: str) -> Draft202012Validator:
    """Validator of ``schemas/{name}.schema.json`` (``ground_truth`` or ``features_index``)."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_error(error: Any, source: str) -> str:
    """One schema error as "FILE[: video 'V']: field 'a.b'...", naming the failing path."""
    path = [str(p) for p in error.absolute_path]
    where = source
    if len(path) >= 2 and path[0] == "database":
        where, path = f"{source}: video '{path[1]}'", path[2:]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{where}: missing field '{'.'.join([*path, missing])}'"
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - known) if isinstance(error.instance, dict) else []
        return f"{where}: unknown field(s) {['.'.join([*path, k]) for k in unknown]}"
    return f"{where}: field '{'.'.join(path) or '(top level)'}': {error.message}"


def check_schema(document: Any, name: str, source: str) -> None:
    """Validate ``document`` against ``schemas/{name}.schema.json``; raise naming file and path."""
    errors = sorted(schema_validator(name).iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DatasetError(_schema_error(errors[0], source) + more)


def validate_ground_truth(gt: Mapping[str, Any], source: str = GROUND_TRUTH_FILE) -> None:
    """Check a canonical ground truth against its schema and the cross-field rules; raise
    :class:`DatasetError` naming the file and, where there is one, the video."""
    check_schema(gt, "ground_truth", source)
    classes = set(gt["classes"])
    if len(classes) != len(gt["classes"]):
        raise DatasetError(f"{source}: duplicate class names in 'classes'")
    if not math.isfinite(gt["snippet_seconds"]):
        raise DatasetError(f"{source}: snippet_seconds must be a positive number")
    for video_id, entry in gt["database"].items():
        where = f"{source}: video '{video_id}'"
        duration = entry["duration"]
        if not math.isfinite(duration):
            raise DatasetError(f"{where}: duration {duration!r} must be a positive number of seconds")
        for label in entry.get("labels", []):
            if label not in classes:
                raise DatasetError(f"{where}: label {label!r} is not in the class list")
        for ann in entry.get("annotations", []):
            if ann["label"] not in classes:
                raise DatasetError(f"{where}: annotation label {ann['label']!r} is not in the class list")
            start, end = ann["segment"]
            if not (math.isfinite(start) and math.isfinite(end) and end >= start):
                raise DatasetError(f"{where}: bad segment {ann['segment']!r}")


FAMILIES: tuple[str, ...] = tuple(
    json.loads((SCHEMA_DIR / "ground_truth.schema.json").read_text())["properties"]["family"]["enum"]
)


def dataset_family(gt: Mapping[str, Any], source: str = GROUND_TRUTH_FILE) -> str:
    """The data set's benchmark family (``thumos14`` or ``activitynet``): its ``family`` field.

    Files written before that field existed get it derived from ``dataset`` (an
    ``activitynet``/``anet`` prefix means ``activitynet``, anything else ``thumos14``), with
    a warning: the name is a guess, the field is a statement.
    """
    family = gt.get("family")
    if family is not None:
        return str(family)
    name = str(gt.get("dataset", ""))
    derived = "activitynet" if name.lower().startswith(("activitynet", "anet")) else "thumos14"
    log.warning(
        "%s: no 'family' field (written before it existed); using %r, derived from dataset name %r. "
        'Re-run ingest, or add "family": "%s" to the file, to make it explicit.',
        source,
        derived,
        name,
        derived,
    )
    return derived


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
    index_doc = {
        "schema_version": SCHEMA_VERSION,
        "feature_dim": int(feature_dim),
        "modalities": {k: [int(x) for x in v] for k, v in (modalities or {}).items()},
        "videos": index,
    }
    check_schema(index_doc, "features_index", str(directory / FEATURES_INDEX_FILE))
    atomic_write_json(directory / FEATURES_INDEX_FILE, index_doc)
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
        check_schema(meta, "features_index", str(index_path))
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
