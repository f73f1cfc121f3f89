"""Readers for per-video feature files: ``<video>.npy`` (T, 2048), or rgb + flow (T, 1024).

Per-video files are plain (non-pickled) ``.npy`` arrays, so they are loaded with
``allow_pickle=False``.  Several folders may be given (UM keeps ``train/`` and ``test/``
apart); a video found in two of them is an error rather than a silent choice.

RGB and flow streams of the released I3D features can differ by one snippet (the flow
of the last frame pair is missing).  We crop both to the shorter stream, which keeps
every snippet's two halves aligned in time; a larger mismatch means the files do not
belong together and is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .canonical import DatasetError, validate_features
from .ingest_common import logger

MAX_RGB_FLOW_MISMATCH = 1  # snippets


def index_feature_dirs(directories: Sequence[str | Path], what: str = "features") -> dict[str, Path]:
    """Map video id -> ``.npy`` path over several folders; the same video twice is an error."""
    found: dict[str, Path] = {}
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise DatasetError(f"{directory}: {what} folder not found")
        for path in sorted(directory.glob("*.npy")):
            video_id = path.stem
            if video_id in found:
                raise DatasetError(f"{path}: video '{video_id}' also has {what} in {found[video_id]}")
            found[video_id] = path
    return found


def _load_plain(path: Path, video_id: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"{path}: video '{video_id}': cannot be read as a plain .npy array ({exc})") from exc


def _lookup(found: dict[str, Path], video_id: str, directories: Sequence[str | Path], what: str) -> Path:
    if video_id not in found:
        names = ", ".join(str(d) for d in directories)
        raise DatasetError(f"{names}: video '{video_id}': no {what} file '{video_id}.npy'")
    return found[video_id]


def _log_unused(found: dict[str, Path], video_ids: Iterable[str], what: str) -> None:
    unused = sorted(set(found) - set(video_ids))
    if unused:
        logger.info(
            "%d %s file(s) belong to no annotated video and are skipped, e.g. %s", len(unused), what, unused[:3]
        )


def load_per_video_features(
    directories: Sequence[str | Path], video_ids: Sequence[str], feature_dim: int | None = 2048
) -> dict[str, np.ndarray]:
    """Read ``<video>.npy`` (T, D) for every annotated video."""
    found = index_feature_dirs(directories)
    _log_unused(found, video_ids, "feature")
    features = {}
    for video_id in tqdm(video_ids, desc="features", unit="video"):
        path = _lookup(found, video_id, directories, "feature")
        features[video_id] = validate_features(video_id, _load_plain(path, video_id), feature_dim, str(path))
    return features


def load_rgb_flow_features(
    rgb_dirs: Sequence[str | Path],
    flow_dirs: Sequence[str | Path],
    video_ids: Sequence[str],
    feature_dim: int | None = 2048,
    max_mismatch: int = MAX_RGB_FLOW_MISMATCH,
) -> dict[str, np.ndarray]:
    """Concatenate RGB then flow per video, cropping both to the shorter stream."""
    half = None if feature_dim is None else feature_dim // 2
    rgb_found = index_feature_dirs(rgb_dirs, "rgb")
    flow_found = index_feature_dirs(flow_dirs, "flow")
    _log_unused(rgb_found, video_ids, "rgb")
    features, cropped = {}, 0
    for video_id in tqdm(video_ids, desc="features", unit="video"):
        rgb_path = _lookup(rgb_found, video_id, rgb_dirs, "rgb")
        flow_path = _lookup(flow_found, video_id, flow_dirs, "flow")
        rgb = validate_features(video_id, _load_plain(rgb_path, video_id), half, str(rgb_path))
        flow = validate_features(video_id, _load_plain(flow_path, video_id), half, str(flow_path))
        if rgb.shape[1] != flow.shape[1]:
            raise DatasetError(
                f"{rgb_path}, {flow_path}: video '{video_id}': rgb has {rgb.shape[1]} dims, flow {flow.shape[1]}"
            )
        if abs(rgb.shape[0] - flow.shape[0]) > max_mismatch:
            raise DatasetError(
                f"{rgb_path}, {flow_path}: video '{video_id}': rgb has {rgb.shape[0]} snippets, flow "
                f"{flow.shape[0]} (more than {max_mismatch} apart: not the same video?)"
            )
        length = min(rgb.shape[0], flow.shape[0])
        cropped += rgb.shape[0] != flow.shape[0]
        features[video_id] = np.concatenate([rgb[:length], flow[:length]], axis=1)
    if cropped:
        logger.info("%d video(s) had rgb and flow one snippet apart; cropped to the shorter", cropped)
    return features
