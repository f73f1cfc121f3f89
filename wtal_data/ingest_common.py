"""What every ingest reader shares: the data-set presets and small parsing helpers.

The presets hold what the annotation files do not say: how each original split maps to
the protocol's ``train``/``test`` roles and the snippet convention of the released I3D
features (16 frames at 25 fps, so 0.64 s per feature row).  Keeping them in one table
means a new data set is one entry, not a new code path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .canonical import SCHEMA_VERSION, DatasetError

logger = logging.getLogger("wtal_data.ingest")


@dataclass(frozen=True)
class DatasetPreset:
    """Facts about a real data set that its annotation files leave implicit."""

    name: str
    family: str  # benchmark family (ground_truth.json "family"): whose training defaults apply
    subset_map: Mapping[str, str]  # original split name -> "train" | "test"
    frames_per_snippet: int = 16
    feature_fps: float = 25.0
    feature_dim: int = 2048  # RGB 1024 then flow 1024
    annotations_dir: str = ""  # W-TALC folder name, e.g. "Thumos14reduced-Annotations"
    features_file: str = ""  # W-TALC packed features next to that folder
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def snippet_seconds(self) -> float:
        return self.frames_per_snippet / self.feature_fps


DATASETS: dict[str, DatasetPreset] = {
    # THUMOS14: the 200 untrimmed 'validation' videos are the training set.
    "thumos14": DatasetPreset(
        name="thumos14",
        family="thumos14",
        subset_map={"validation": "train", "train": "train", "test": "test"},
        annotations_dir="Thumos14reduced-Annotations",
        features_file="Thumos14reduced-I3D-JOINTFeatures.npy",
    ),
    # ActivityNet v1.2: its test labels are withheld, so 'validation' is the test set.
    "activitynet12": DatasetPreset(
        name="activitynet12",
        family="activitynet",
        subset_map={"training": "train", "train": "train", "validation": "test", "test": "test"},
        annotations_dir="ActivityNet1.2-Annotations",
        features_file="ActivityNet1.2-I3D-JOINTFeatures.npy",
    ),
}


def get_preset(dataset: str) -> DatasetPreset:
    if dataset not in DATASETS:
        raise DatasetError(
            f"--dataset: unknown data set {dataset!r}; known real sets: {sorted(DATASETS)} "
            "(synthetic sets are made by the 'synth' command, not ingested)"
        )
    return DATASETS[dataset]


def to_str(value: Any) -> str:
    """Decode the byte strings that the W-TALC ``.npy`` files hold; pass str through."""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8")
    return str(value)


def empty_ground_truth(preset: DatasetPreset, classes: list[str], source: str) -> dict[str, Any]:
    """The canonical ground-truth skeleton (see :mod:`.canonical`), without videos."""
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": preset.name,
        "family": preset.family,
        "synthetic": False,
        "classes": list(classes),
        "snippet_seconds": preset.snippet_seconds,
        "frames_per_snippet": preset.frames_per_snippet,
        "feature_fps": preset.feature_fps,
        "source": source,
        "database": {},
        "ambiguous": {},
    }


def parse_segment(raw: Any, source: str, video_id: str) -> list[float]:
    """``[start, end]`` in seconds as floats (UM writes them as strings)."""
    try:
        start, end = (float(x) for x in raw)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: video '{video_id}': segment {raw!r} is not [start, end] ({exc})") from exc
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
        raise DatasetError(f"{source}: video '{video_id}': bad segment {raw!r} (need 0 <= start <= end)")
    return [start, end]


def check_label(label: str, classes: Iterable[str], source: str, video_id: str) -> str:
    if label not in classes:
        raise DatasetError(f"{source}: video '{video_id}': label {label!r} is not in the class list")
    return label


def unique_in_order(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def parse_ambiguous(path: Path, known_videos: Iterable[str]) -> dict[str, list[list[float]]]:
    """Read ``Ambiguous_test.txt`` (``video  start end`` per line, seconds, CRLF, double space).

    Lines for videos the annotations do not have are dropped and logged: THUMOS14's file
    lists 3 segments of ``video_test_0001292``, which the W-TALC set (212 test videos)
    leaves out, so no prediction can ever meet them.
    """
    known = set(known_videos)
    ambiguous: dict[str, list[list[float]]] = {}
    dropped: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 3:
            raise DatasetError(f"{where}: expected 'video start end', got {line.strip()!r}")
        video_id = fields[0]
        segment = parse_segment(fields[1:], where, video_id)
        if video_id not in known:
            dropped[video_id] = dropped.get(video_id, 0) + 1
            continue
        ambiguous.setdefault(video_id, []).append(segment)
    if dropped:
        logger.info("%s: dropped ambiguous segments of videos not in the annotations: %s", path, dropped)
    return ambiguous


def require_file(path: Path, what: str = "annotation file") -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path
