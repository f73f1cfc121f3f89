"""Convert, once, the layouts researchers have into the canonical data set (:mod:`.canonical`).

Annotation readers (one module each) give the canonical ground-truth dict:

* :func:`load_wtalc_annotations` - W-TALC / CO2-Net ``<Name>-Annotations/*.npy``;
* :func:`load_um_annotations` - UM's ``gt.json`` + ``split_train.txt`` / ``split_test.txt``.

Feature readers give ``{video_id: (T, D) float32}``:

* :func:`load_wtalc_features` - the packed ``<Name>-I3D-JOINTFeatures.npy`` object array;
* :func:`load_per_video_features` - folders of ``<video>.npy`` (T, 2048);
* :func:`load_rgb_flow_features` - rgb and flow folders of (T, 1024), RGB then flow.

:func:`ingest` combines one of each and writes the canonical folder, features first and
``ground_truth.json`` last, each atomically, so a crash never leaves a complete-looking
folder.  Every bad input raises :class:`~.canonical.DatasetError` naming file and video.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .canonical import (
    FEATURES_INDEX_FILE,
    GROUND_TRUTH_FILE,
    DatasetError,
    FeatureStore,
    check_consistency,
    load_ground_truth,
    read_json,
    write_features,
    write_ground_truth,
)
from .ingest_common import DATASETS, get_preset, logger, parse_ambiguous, require_file
from .ingest_features import load_per_video_features, load_rgb_flow_features
from .ingest_um import load_um_annotations, read_um_database, um_split_videos
from .ingest_wtalc import find_wtalc_features, load_wtalc_annotations, load_wtalc_features

__all__ = [
    "DATASETS",
    "FORMATS",
    "ingest",
    "load_durations",
    "load_per_video_features",
    "load_rgb_flow_features",
    "load_um_annotations",
    "load_wtalc_annotations",
    "load_wtalc_features",
    "summarize",
]

FORMATS = ("wtalc", "um", "per-video")


def load_durations(path: str | Path) -> dict[str, float]:
    """Durations in seconds from a JSON file: ``{video: seconds}`` or a canonical/ActivityNet ground truth."""
    path = Path(path)
    raw = read_json(path, "durations file")
    if isinstance(raw, dict) and isinstance(raw.get("database"), dict):
        raw = {v: e.get("duration") for v, e in raw["database"].items()}
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object of video -> seconds")
    durations = {}
    for video_id, seconds in raw.items():
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise DatasetError(f"{path}: video '{video_id}': duration {seconds!r} must be positive seconds")
        durations[video_id] = float(seconds)
    return durations


def read_class_list(path: str | Path) -> list[str]:
    """One class name per line, in the order that fixes class indices."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: class list file not found")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not classes or len(set(classes)) != len(classes):
        raise DatasetError(f"{path}: class list is empty or has duplicates")
    return classes


def _load_features(
    video_ids: Sequence[str],
    features_file: str | Path | None,
    features_dirs: Sequence[str | Path],
    rgb_dirs: Sequence[str | Path],
    flow_dirs: Sequence[str | Path],
    feature_dim: int | None,
) -> tuple[dict[str, np.ndarray], str]:
    if features_file is not None:
        return load_wtalc_features(features_file, list(video_ids), feature_dim), f"packed {Path(features_file).name}"
    if features_dirs:
        return load_per_video_features(features_dirs, video_ids, feature_dim), "per-video .npy files"
    return load_rgb_flow_features(rgb_dirs, flow_dirs, video_ids, feature_dim), "per-video rgb + flow .npy files"


def _check_lengths(gt: Mapping[str, Any], features: Mapping[str, np.ndarray]) -> None:
    """Log videos whose snippet count is far from duration / snippet_seconds (not an error)."""
    off = []
    for video_id, entry in gt["database"].items():
        expected = entry["duration"] / gt["snippet_seconds"]
        actual = features[video_id].shape[0]
        if abs(actual - expected) > max(2.0, 0.05 * expected):
            off.append((video_id, actual, round(expected, 1)))
    if off:
        logger.warning(
            "%d video(s) have a snippet count far from duration / snippet_seconds, e.g. %s", len(off), off[:3]
        )


def ingest(
    output: str | Path,
    dataset: str,
    fmt: str = "wtalc",
    *,
    annotations: str | Path | None = None,
    gt_json: str | Path | None = None,
    split_train: str | Path | None = None,
    split_test: str | Path | None = None,
    features_file: str | Path | None = None,
    features_dirs: Sequence[str | Path] = (),
    rgb_dirs: Sequence[str | Path] = (),
    flow_dirs: Sequence[str | Path] = (),
    no_features: bool = False,
    durations: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
    video_labels: str = "labels_all",
    feature_dim: int | None = 2048,
    ambiguous: str | Path | None = None,
) -> dict[str, Any]:
    """Read one annotation layout and one feature layout; write the canonical folder.

    ``fmt`` names the layout: ``wtalc`` (``annotations`` folder, packed ``features_file``
    found next to it unless given), ``um`` (``gt_json`` + split files) or ``per-video``
    (either annotation source, features from per-video folders).  ``ambiguous`` is an
    ``Ambiguous_test.txt`` to use instead of the one in the W-TALC folder (UM ships none).
    Returns the summary
    of the written folder (:func:`summarize`).
    """
    preset = get_preset(dataset)
    if fmt not in FORMATS:
        raise DatasetError(f"--format: {fmt!r} is not one of {FORMATS}")
    features_dirs, rgb_dirs, flow_dirs = list(features_dirs), list(rgb_dirs), list(flow_dirs)
    if bool(rgb_dirs) != bool(flow_dirs):
        raise DatasetError("--rgb-dir and --flow-dir must be given together")
    feature_sources = sum([features_file is not None, bool(features_dirs), bool(rgb_dirs)])
    if feature_sources > 1:
        raise DatasetError("give one feature source: --features, --features-dir or --rgb-dir/--flow-dir")
    if no_features and feature_sources:
        raise DatasetError("--no-features conflicts with the feature options given")
    use_um = fmt == "um" or (fmt == "per-video" and gt_json is not None)
    if fmt == "per-video" and not (features_dirs or rgb_dirs or no_features):
        raise DatasetError("--format per-video needs --features-dir or --rgb-dir/--flow-dir")
    if use_um:
        if annotations is not None:
            raise DatasetError("give either --annotations (W-TALC) or --gt-json (UM), not both")
        if gt_json is None or split_train is None or split_test is None:
            raise DatasetError("the UM layout needs --gt-json, --split-train and --split-test")
        if features_file is not None:
            raise DatasetError("--features (packed, videoname.npy order) only goes with --annotations")
    elif annotations is None:
        raise DatasetError(f"--format {fmt} needs --annotations DIR (the <Name>-Annotations folder)")
    elif not Path(annotations).is_dir():  # before looking for the features next to it
        raise DatasetError(f"{annotations}: annotation folder not found")
    if fmt == "wtalc" and not (no_features or feature_sources):
        features_file = find_wtalc_features(annotations, dataset)

    features: dict[str, np.ndarray] = {}
    feature_note = "no features"
    if use_um:
        video_ids = list(um_split_videos(split_train, split_test))
        if not no_features:
            features, feature_note = _load_features(video_ids, None, features_dirs, rgb_dirs, flow_dirs, feature_dim)
        database = read_um_database(gt_json)
        durations = dict(durations or {})
        derived = [
            v for v in video_ids if v not in durations and v in features and "duration" not in database.get(v, {})
        ]
        for video_id in derived:
            durations[video_id] = features[video_id].shape[0] * preset.snippet_seconds
        gt = load_um_annotations(gt_json, split_train, split_test, dataset, durations=durations, classes=classes)
        if derived:
            logger.info(
                "durations of %d video(s) derived from snippet counts (T * %.2f s)",
                len(derived),
                preset.snippet_seconds,
            )
            gt["source"] += "; durations from features (snippets x snippet_seconds)"
    else:
        gt = load_wtalc_annotations(annotations, dataset, video_labels=video_labels)
        if not no_features:
            features, feature_note = _load_features(
                list(gt["database"]), features_file, features_dirs, rgb_dirs, flow_dirs, feature_dim
            )
    gt["source"] += f"; features: {feature_note}"
    if ambiguous is not None:
        gt["ambiguous"] = parse_ambiguous(require_file(Path(ambiguous), "ambiguous-segment file"), gt["database"])

    output = Path(output)
    # The ground truth marks a finished folder: remove an old one before touching features,
    # so a crash in between never pairs new features with an old ground truth.
    (output / GROUND_TRUTH_FILE).unlink(missing_ok=True)
    if features:
        _check_lengths(gt, features)
        write_features(output, features, source=feature_note)
    elif (output / FEATURES_INDEX_FILE).exists():
        logger.warning("%s: keeps features from an earlier run (--no-features); they may not match", output)
    write_ground_truth(output, gt)
    logger.info("wrote %s", output)
    return summarize(output)


def summarize(directory: str | Path) -> dict[str, Any]:
    """Counts per subset of a canonical folder: videos, segments, classes, ambiguous, snippets."""
    directory = Path(directory)
    gt = load_ground_truth(directory)
    store = None
    if (directory / FEATURES_INDEX_FILE).exists():
        store = FeatureStore.open(directory)
        check_consistency(gt, store, str(directory))
    subsets: dict[str, Any] = {}
    for video_id, entry in gt["database"].items():
        row = subsets.setdefault(
            entry["subset"], {"videos": 0, "segments": 0, "classes": set(), "ambiguous": 0, "snippets": 0}
        )
        row["videos"] += 1
        row["segments"] += len(entry["annotations"])
        row["classes"].update(a["label"] for a in entry["annotations"])
        row["ambiguous"] += len(gt.get("ambiguous", {}).get(video_id, []))
        if store is not None:
            row["snippets"] += store.index[video_id][1]
    for row in subsets.values():
        row["classes"] = len(row["classes"])
        if store is None:
            row["snippets"] = None
    return {
        "dataset": gt["dataset"],
        "synthetic": gt.get("synthetic", False),
        "num_classes": len(gt["classes"]),
        "snippet_seconds": gt["snippet_seconds"],
        "feature_dim": store.feature_dim if store is not None else None,
        "subsets": dict(sorted(subsets.items(), key=lambda kv: kv[0] != "train")),
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    lines = [
        f"dataset {summary['dataset']} (synthetic: {str(summary['synthetic']).lower()}), "
        f"{summary['num_classes']} classes, snippet {summary['snippet_seconds']:.4g} s, "
        f"feature dim {summary['feature_dim'] if summary['feature_dim'] is not None else '-'}",
        f"{'subset':<8}{'videos':>8}{'segments':>10}{'classes':>9}{'ambiguous':>11}{'snippets':>10}",
    ]
    for subset, row in summary["subsets"].items():
        snippets = "-" if row["snippets"] is None else str(row["snippets"])
        lines.append(
            f"{subset:<8}{row['videos']:>8}{row['segments']:>10}{row['classes']:>9}{row['ambiguous']:>11}{snippets:>10}"
        )
    return "\n".join(lines)
