"""Reader for the W-TALC / CO2-Net / DELU layout: ``<Name>-Annotations/*.npy``.

This is the only place in the project that unpickles anything: the ``.npy`` files of
that layout are pickled object arrays of byte strings and per-video lists.  They are
read once, from a trusted copy, and converted to the canonical JSON + float32 form.

Edge cases of the real files, and what we do (see ``docs/architecture.md`` "Ingest"):

* Video-level labels: ``labels_all.npy`` is what every published W-TALC-family method
  trains on, so it is kept as given (policy ``labels_all``).  Where it is empty although
  the video has segments (THUMOS14 ``video_test_0000270``: 29 HammerThrow segments) the
  labels are derived from the segments.  In 28 THUMOS14 videos ``labels_all`` and the
  segment labels disagree (mostly CricketBowling/CricketShot); policies ``annotations``
  and ``union`` are available for those who prefer the segments' view.
* Segments past the video's duration (30 in THUMOS14, 24 of them in video_test_0000270;
  185 in ActivityNet1.2) and zero-length or duplicated segments (ActivityNet1.2) are kept
  unchanged: they are part of the official ground truth that published numbers use.
  Consumers that map segments to snippets clip to the video's snippet count.
* ``extracted_fps.npy`` is ignored (misleading); ``original_fps.npy`` gives ``fps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .canonical import DatasetError, validate_features
from .ingest_common import (
    DatasetPreset,
    check_label,
    empty_ground_truth,
    get_preset,
    logger,
    parse_ambiguous,
    parse_segment,
    require_file,
    to_str,
    unique_in_order,
)

VIDEO_LABEL_POLICIES = ("labels_all", "annotations", "union")
REQUIRED_FILES = ("classlist", "videoname", "subset", "segments", "labels", "labels_all", "duration")


def _load_pickled(path: Path) -> np.ndarray:
    """``np.load`` with pickles allowed: only for the trusted W-TALC files."""
    require_file(path)
    try:
        return np.load(path, allow_pickle=True, encoding="latin1")
    except Exception as exc:  # corrupt file, wrong format
        raise DatasetError(f"{path}: cannot be read as a .npy file ({exc})") from exc


def load_wtalc_annotations(
    annotation_dir: str | Path, dataset: str, video_labels: str = "labels_all"
) -> dict[str, Any]:
    """Convert a ``<Name>-Annotations`` folder into the canonical ground-truth dict.

    ``dataset`` names the preset (``thumos14``, ``activitynet12``) that maps original
    splits to ``train``/``test`` and fixes the snippet convention.  ``video_labels``
    chooses the video-level labels: ``labels_all`` (the file, as the published methods
    use it; derived from the segments where empty), ``annotations`` or ``union``.
    """
    preset = get_preset(dataset)
    if video_labels not in VIDEO_LABEL_POLICIES:
        raise DatasetError(f"--video-labels: {video_labels!r} is not one of {VIDEO_LABEL_POLICIES}")
    folder = WtalcFolder.read(Path(annotation_dir))
    gt = empty_ground_truth(preset, folder.classes, source=f"W-TALC/CO2-Net annotations '{folder.directory.name}'")
    derived, disagree = [], 0
    for i, video_id in enumerate(folder.video_ids):
        original_subset = folder.original_subset(i, video_id, preset)
        duration, fps = folder.duration(i, video_id), folder.fps(i)
        annotations = folder.annotations(i, video_id)
        from_file = folder.labels_all(i, video_id)
        from_segments = unique_in_order(a["label"] for a in annotations)
        gt["database"][video_id] = {
            "subset": preset.subset_map[original_subset],
            "original_subset": original_subset,
            "duration": duration,
            "fps": fps,
            "labels": choose_video_labels(video_labels, from_file, from_segments),
            "annotations": annotations,
        }
        disagree += set(from_file) != set(from_segments)
        if video_labels != "union" and not from_file and from_segments:
            derived.append(video_id)  # labels_all.npy empty: the labels came from the segments

    if derived:
        logger.info("labels_all.npy empty for %d video(s); labels derived from segments: %s", len(derived), derived)
    if disagree:
        logger.info(
            "%d video(s) where labels_all.npy and the segment labels disagree (policy %s)", disagree, video_labels
        )
    ambiguous_path = folder.directory / "Ambiguous_test.txt"
    if ambiguous_path.exists():
        gt["ambiguous"] = parse_ambiguous(ambiguous_path, gt["database"])
    return gt


def choose_video_labels(policy: str, from_file: list[str], from_segments: list[str]) -> list[str]:
    """A video's labels under ``policy`` (see the module docstring); ``labels_all`` falls back to the segments."""
    if policy == "annotations" or (policy == "labels_all" and not from_file):
        return from_segments
    if policy == "union":
        return unique_in_order(from_file + from_segments)
    return from_file


@dataclass(frozen=True)
class WtalcFolder:
    """The arrays of one ``<Name>-Annotations`` folder, checked for size, read video by video.

    Every accessor names the ``.npy`` file and the video in its error.
    """

    directory: Path
    arrays: dict[str, np.ndarray]
    classes: list[str]
    video_ids: list[str]
    class_set: frozenset[str]

    @classmethod
    def read(cls, directory: Path) -> WtalcFolder:
        if not directory.is_dir():
            raise DatasetError(f"{directory}: annotation folder not found")
        arrays = {name: _load_pickled(directory / f"{name}.npy") for name in REQUIRED_FILES}
        fps_path = directory / "original_fps.npy"
        if fps_path.exists():
            arrays["original_fps"] = _load_pickled(fps_path)
        classes = [to_str(c) for c in np.ravel(arrays["classlist"])]
        if len(set(classes)) != len(classes):
            raise DatasetError(f"{directory / 'classlist.npy'}: duplicate class names")
        video_ids = [to_str(v) for v in np.ravel(arrays["videoname"])]
        if len(set(video_ids)) != len(video_ids):
            raise DatasetError(f"{directory / 'videoname.npy'}: duplicate video names")
        for name, array in arrays.items():
            if name not in ("classlist", "videoname") and len(array) != len(video_ids):
                raise DatasetError(
                    f"{directory / (name + '.npy')}: has {len(array)} entries, "
                    f"videoname.npy has {len(video_ids)} videos"
                )
        return cls(directory, arrays, classes, video_ids, frozenset(classes))

    def path(self, name: str) -> str:
        return str(self.directory / f"{name}.npy")

    def original_subset(self, i: int, video_id: str, preset: DatasetPreset) -> str:
        subset = to_str(self.arrays["subset"][i])
        if subset not in preset.subset_map:
            raise DatasetError(
                f"{self.path('subset')}: video '{video_id}': subset {subset!r} "
                f"is not one of {sorted(preset.subset_map)} for {preset.name}"
            )
        return subset

    def duration(self, i: int, video_id: str) -> float:
        """Seconds."""
        duration = float(np.ravel(self.arrays["duration"][i])[0])
        if not (np.isfinite(duration) and duration > 0):
            raise DatasetError(f"{self.path('duration')}: video '{video_id}': duration {duration!r} s")
        return duration

    def fps(self, i: int) -> float | None:
        """The original video's frame rate, where the folder has ``original_fps.npy`` and it is usable."""
        if "original_fps" not in self.arrays:
            return None
        fps = float(np.ravel(self.arrays["original_fps"][i])[0])
        return fps if np.isfinite(fps) and fps > 0 else None

    def annotations(self, i: int, video_id: str) -> list[dict[str, Any]]:
        """``[{"label", "segment"}]``, segments in seconds, from segments.npy and labels.npy."""
        segments, labels = list(self.arrays["segments"][i]), list(self.arrays["labels"][i])
        if len(segments) != len(labels):
            raise DatasetError(
                f"{self.path('labels')}: video '{video_id}': {len(labels)} labels "
                f"for {len(segments)} segments in segments.npy"
            )
        return [
            {
                "label": check_label(to_str(label), self.class_set, self.path("labels"), video_id),
                "segment": parse_segment(segment, self.path("segments"), video_id),
            }
            for segment, label in zip(segments, labels)
        ]

    def labels_all(self, i: int, video_id: str) -> list[str]:
        """The published video-level labels (labels_all.npy), in order, without repeats."""
        return unique_in_order(
            check_label(to_str(label), self.class_set, self.path("labels_all"), video_id)
            for label in self.arrays["labels_all"][i]
        )


def find_wtalc_features(annotation_dir: str | Path, dataset: str) -> Path:
    """Where the packed features sit by convention: next to the annotation folder."""
    annotation_dir = Path(annotation_dir)
    preset = get_preset(dataset)
    name = annotation_dir.name.removesuffix("-Annotations")
    candidates = [annotation_dir.parent / f"{name}-I3D-JOINTFeatures.npy", annotation_dir.parent / preset.features_file]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"{candidates[0]}: packed feature file not found (pass --features FILE, per-video folders, "
        "or --no-features for the ground truth alone)"
    )


def load_wtalc_features(
    features_file: str | Path, video_ids: list[str], feature_dim: int | None = 2048
) -> dict[str, np.ndarray]:
    """Unpack ``<Name>-I3D-JOINTFeatures.npy``: an object array of (T, D) arrays in videoname order."""
    features_file = Path(features_file)
    packed = _load_pickled(features_file)
    if packed.ndim != 1 and packed.dtype == object:
        packed = packed.ravel()
    if len(packed) != len(video_ids):
        raise DatasetError(
            f"{features_file}: holds {len(packed)} feature arrays but the annotations list "
            f"{len(video_ids)} videos (videoname.npy); they must correspond one to one, in order"
        )
    features = {}
    for video_id, array in tqdm(zip(video_ids, packed), total=len(video_ids), desc="features", unit="video"):
        features[video_id] = validate_features(video_id, array, feature_dim, str(features_file))
    return features


def annotated_videos(directory: Path, dataset: str, subset: str | None = None) -> list[str]:
    """The sorted ids of a W-TALC annotation folder's videos, all or those of one protocol
    ``subset`` (``train`` | ``test``, through the data set's preset): what the workflow checks
    the videos folder against before ingest has written a ground truth."""
    from .ingest_common import get_preset

    preset = get_preset(dataset)
    folder = WtalcFolder.read(Path(directory))
    return sorted(
        v
        for i, v in enumerate(folder.video_ids)
        if subset is None or preset.subset_map.get(folder.original_subset(i, v, preset)) == subset
    )
