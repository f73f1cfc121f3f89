"""Convert, once, the layouts researchers have into the canonical data set (:mod:`.canonical`).

Annotation readers (one module each) give the canonical ground-truth dict:

* :func:`load_wtalc_annotations` - W-TALC / CO2-Net ``<Name>-Annotations/*.npy``;
* :func:`load_um_annotations` - UM's ``gt.json`` + ``split_train.txt`` / ``split_test.txt``.

Feature readers give ``{video_id: (T, D) float32}``:

* :func:`load_wtalc_features` - the packed ``<Name>-I3D-JOINTFeatures.npy`` object array;
* :func:`load_per_video_features` - folders of ``<video>.npy`` (T, 2048);
* :func:`load_rgb_flow_features` - rgb and flow folders of (T, 1024), RGB then flow.

:func:`ingest` takes one input layout's reader (:mod:`.ingest_formats`: ``wtalc``, ``um``,
``per-video``, registered by name) and one feature source, and writes the canonical folder,
features first and ``ground_truth.json`` last, each atomically, so a crash never leaves a
complete-looking folder.  Every bad input raises :class:`~.canonical.DatasetError` naming
file and video.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .canonical import (
    FEATURES_INDEX_FILE,
    GROUND_TRUTH_FILE,
    FeatureStore,
    check_consistency,
    load_ground_truth,
    write_features,
    write_ground_truth,
)
from .ingest_common import DATASETS, get_preset, logger, parse_ambiguous, require_file
from .ingest_features import load_per_video_features, load_rgb_flow_features
from .ingest_formats import INGEST_FORMATS, FeatureOptions, FormatReader, PerVideoReader, UmReader, WtalcReader
from .ingest_um import load_durations, load_um_annotations, read_class_list
from .ingest_wtalc import load_wtalc_annotations, load_wtalc_features

__all__ = [
    "DATASETS",
    "FORMATS",
    "INGEST_FORMATS",
    "FeatureOptions",
    "FormatReader",
    "PerVideoReader",
    "UmReader",
    "WtalcReader",
    "ingest",
    "load_durations",
    "load_per_video_features",
    "load_rgb_flow_features",
    "load_um_annotations",
    "load_wtalc_annotations",
    "load_wtalc_features",
    "read_class_list",
    "summarize",
]

FORMATS = INGEST_FORMATS.names()


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
    reader: FormatReader,
    features: FeatureOptions | None = None,
    *,
    ambiguous: str | Path | None = None,
) -> dict[str, Any]:
    """Read one input layout (``reader``, see :mod:`.ingest_formats`) and write the canonical folder.

    ``features`` says where the features come from (``None``: the layout's own, e.g. the
    W-TALC packed file next to the annotations).  ``ambiguous`` is an ``Ambiguous_test.txt``
    to use instead of the one in the W-TALC folder (UM ships none).  Returns the summary of
    the written folder (:func:`summarize`).
    """
    get_preset(dataset)  # an unknown data set is the first thing to report
    features = FeatureOptions() if features is None else features
    reader.check(features)
    ingested = reader.read(dataset, features)
    gt = ingested.gt
    gt["source"] += f"; features: {ingested.feature_note}"
    if ambiguous is not None:
        gt["ambiguous"] = parse_ambiguous(require_file(Path(ambiguous), "ambiguous-segment file"), gt["database"])
    write_canonical(Path(output), gt, ingested.features, ingested.feature_note)
    return summarize(output)


def write_canonical(output: Path, gt: dict[str, Any], features: Mapping[str, np.ndarray], feature_note: str) -> None:
    """Features first, ``ground_truth.json`` last: a folder with a ground truth is complete."""
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
