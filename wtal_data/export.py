"""``python -m wtal_data export``: videos' features from a canonical data set, one ``.npy`` each.

What ``python -m wtal_training predict --features`` reads as "your own video": a plain
(snippets, dims) float32 array per video, without its ground truth.  Pick the videos by id
(``--video``, repeatable) or by subset (``--subset test``).  ``--output`` is a folder, which
receives ``<video>.npy`` per video, or, for exactly one video, a file name ending in
``.npy`` (the video id the predictions then carry is that file's stem).  Every file is
written atomically; an unknown video, a missing data folder or a ``.npy`` name for several
videos is an error naming it (exit 2), raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wtal_common.errors import ConfigError
from wtal_common.io import atomic_output

from .canonical import (
    FEATURES_FILE,
    GROUND_TRUTH_FILE,
    DatasetError,
    FeatureStore,
    load_ground_truth,
    validate_features,
    videos_in_subset,
)

SHOWN_IDS = 5  # video ids an "unknown video" error lists as examples


@dataclass(frozen=True)
class ExportedVideo:
    video_id: str
    path: Path
    snippets: int
    dims: int
    seconds: float | None  # snippets x the data set's snippet length


def output_paths(output: Path, video_ids: Sequence[str]) -> dict[str, Path]:
    """Where each video goes: ``OUTPUT/<video>.npy``, or OUTPUT itself when it names one ``.npy`` file."""
    if output.suffix == ".npy":
        if len(video_ids) != 1:
            raise ConfigError(
                f"--output {output}: a .npy file holds one video, but {len(video_ids)} are selected; "
                "give a folder to write <video>.npy for each"
            )
        return {video_ids[0]: output}
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output}: exists and is not a folder")
    return {video_id: output / f"{video_id}.npy" for video_id in video_ids}


def select_videos(gt: dict, data: Path, videos: Sequence[str] | None, subset: str | None) -> list[str]:
    """The requested ids in the order given (duplicates dropped), or the subset's, sorted."""
    source = data / GROUND_TRUTH_FILE
    if subset is not None:
        chosen = videos_in_subset(gt, subset)
        if not chosen:
            raise DatasetError(f"{source}: no video in subset '{subset}'")
        return chosen
    chosen = list(dict.fromkeys(videos or []))
    if not chosen:
        raise ConfigError("give --video ID (repeatable) or --subset NAME")
    unknown = [v for v in chosen if v not in gt["database"]]
    if unknown:
        known = sorted(gt["database"])
        tests = videos_in_subset(gt, "test") or known
        examples = ", ".join(tests[:SHOWN_IDS]) + (", ..." if len(tests) > SHOWN_IDS else "")
        raise DatasetError(
            f"{source}: no video{'s' if len(unknown) > 1 else ''} {', '.join(repr(v) for v in unknown)} in this data set "
            f"({len(known)} videos; test videos: {examples})"
        )
    return chosen


def export_features(
    data: str | Path, output: str | Path, videos: Sequence[str] | None = None, subset: str | None = None
) -> list[ExportedVideo]:
    """Write each selected video's (snippets, dims) float32 features to its own ``.npy``."""
    data, output = Path(data), Path(output)
    if not data.is_dir():
        raise DatasetError(f"{data}: no such data folder (a canonical folder holding {GROUND_TRUTH_FILE})")
    gt = load_ground_truth(data)
    chosen = select_videos(gt, data, videos, subset)
    paths = output_paths(output, chosen)
    store = FeatureStore.open(data)
    source = str(data / FEATURES_FILE)
    arrays = {}
    for video_id in chosen:  # every check before the first write
        if video_id not in store:
            raise DatasetError(f"{source}: video '{video_id}' of {data / GROUND_TRUTH_FILE} has no features")
        arrays[video_id] = validate_features(video_id, np.asarray(store[video_id]), store.feature_dim, source)
    snippet_seconds = gt.get("snippet_seconds")
    exported = []
    for video_id, path in paths.items():
        array = np.ascontiguousarray(arrays[video_id], dtype=np.float32)
        with atomic_output(path, suffix=".npy") as tmp:
            np.save(tmp, array, allow_pickle=False)
        seconds = array.shape[0] * float(snippet_seconds) if snippet_seconds else None
        exported.append(ExportedVideo(video_id, path, int(array.shape[0]), int(array.shape[1]), seconds))
    return exported


def format_exported(exported: Sequence[ExportedVideo]) -> str:
    """One line per file: id, shape, seconds, path."""
    lines = []
    for item in exported:
        seconds = f" ({item.seconds:.1f} s)" if item.seconds is not None else ""
        lines.append(f"{item.video_id}: {item.snippets} snippets x {item.dims} dims{seconds} -> {item.path}")
    return "\n".join(lines)
