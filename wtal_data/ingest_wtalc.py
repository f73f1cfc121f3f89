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

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .canonical import DatasetError, validate_features
from .ingest_common import (
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
    annotation_dir = Path(annotation_dir)
    if not annotation_dir.is_dir():
        raise DatasetError(f"{annotation_dir}: annotation folder not found")
    arrays = {name: _load_pickled(annotation_dir / f"{name}.npy") for name in REQUIRED_FILES}
    fps_path = annotation_dir / "original_fps.npy"
    if fps_path.exists():
        arrays["original_fps"] = _load_pickled(fps_path)

    classes = [to_str(c) for c in np.ravel(arrays["classlist"])]
    if len(set(classes)) != len(classes):
        raise DatasetError(f"{annotation_dir / 'classlist.npy'}: duplicate class names")
    video_ids = [to_str(v) for v in np.ravel(arrays["videoname"])]
    num_videos = len(video_ids)
    if len(set(video_ids)) != num_videos:
        raise DatasetError(f"{annotation_dir / 'videoname.npy'}: duplicate video names")
    for name, array in arrays.items():
        if name in ("classlist", "videoname"):
            continue
        if len(array) != num_videos:
            raise DatasetError(
                f"{annotation_dir / (name + '.npy')}: has {len(array)} entries, videoname.npy has {num_videos} videos"
            )

    gt = empty_ground_truth(preset, classes, source=f"W-TALC/CO2-Net annotations '{annotation_dir.name}'")
    class_set = set(classes)
    derived, disagree = [], 0
    for i, video_id in enumerate(video_ids):
        original_subset = to_str(arrays["subset"][i])
        if original_subset not in preset.subset_map:
            raise DatasetError(
                f"{annotation_dir / 'subset.npy'}: video '{video_id}': subset {original_subset!r} "
                f"is not one of {sorted(preset.subset_map)} for {preset.name}"
            )
        duration = float(np.ravel(arrays["duration"][i])[0])
        if not (np.isfinite(duration) and duration > 0):
            raise DatasetError(f"{annotation_dir / 'duration.npy'}: video '{video_id}': duration {duration!r} s")
        fps = None
        if "original_fps" in arrays:
            fps = float(np.ravel(arrays["original_fps"][i])[0])
            fps = fps if np.isfinite(fps) and fps > 0 else None

        segments, seg_labels = list(arrays["segments"][i]), list(arrays["labels"][i])
        if len(segments) != len(seg_labels):
            raise DatasetError(
                f"{annotation_dir / 'labels.npy'}: video '{video_id}': {len(seg_labels)} labels "
                f"for {len(segments)} segments in segments.npy"
            )
        annotations = [
            {
                "label": check_label(to_str(lab), class_set, str(annotation_dir / "labels.npy"), video_id),
                "segment": parse_segment(seg, str(annotation_dir / "segments.npy"), video_id),
            }
            for seg, lab in zip(segments, seg_labels)
        ]
        from_file = unique_in_order(
            check_label(to_str(lab), class_set, str(annotation_dir / "labels_all.npy"), video_id)
            for lab in arrays["labels_all"][i]
        )
        from_segments = unique_in_order(a["label"] for a in annotations)
        if set(from_file) != set(from_segments):
            disagree += 1
        if video_labels == "annotations" or (video_labels == "labels_all" and not from_file):
            labels = from_segments
            if not from_file and from_segments:
                derived.append(video_id)
        elif video_labels == "union":
            labels = unique_in_order(from_file + from_segments)
        else:
            labels = from_file

        gt["database"][video_id] = {
            "subset": preset.subset_map[original_subset],
            "original_subset": original_subset,
            "duration": duration,
            "fps": fps,
            "labels": labels,
            "annotations": annotations,
        }

    if derived:
        logger.info("labels_all.npy empty for %d video(s); labels derived from segments: %s", len(derived), derived)
    if disagree:
        logger.info(
            "%d video(s) where labels_all.npy and the segment labels disagree (policy %s)", disagree, video_labels
        )
    ambiguous_path = annotation_dir / "Ambiguous_test.txt"
    if ambiguous_path.exists():
        gt["ambiguous"] = parse_ambiguous(ambiguous_path, gt["database"])
    return gt


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
