"""Driver: a folder of videos -> per-video I3D RGB and flow features (W-TALC convention).

For each ``<video>.mp4`` (decoded with decord):

1. frames are sampled at 25 fps (:func:`sample_indices`): frame ``i`` of the output shows
   the source frame on screen at ``(i + 0.5) / 25`` s, so other frame rates are repeated
   or dropped, never interpolated; ``round(source_frames * 25 / source_fps)`` frames;
2. the frame list is padded to ``16 * S + 1`` frames by repeating the last frame, with
   ``S = ceil(frames / 16)`` snippets (the W-TALC features' count);
3. every frame is resized so that its shorter side is 256 pixels (bilinear), and flow is
   computed on these frames: 16 flows per snippet from its 16 frames plus the next
   snippet's first (TV-L1, :mod:`.flow`); RGB is scaled to [-1, 1];
4. the centre 224 x 224 of frames and flows goes through I3D (:mod:`.i3d`), in batches of
   snippets, giving the average-pooled ``Mixed_5c`` output: 1024 numbers per snippet and
   stream.

Output, in the layout ``python -m wtal_data ingest --format per-video --rgb-dir --flow-dir``
reads: ``OUTPUT/rgb/<video>.npy`` and ``OUTPUT/flow/<video>.npy``, float32 (S, 1024), each
written atomically.  A video is done when both exist, so a killed run resumes where it
stopped.  ``OUTPUT/settings.json`` records what the features depend on (sizes, flow, weight
file hashes); resuming with other settings is an error rather than a silent mix.
``OUTPUT/extraction.json`` (snippets per video) is written last, once every video is done.
A video that cannot be decoded is reported by name after all the others are done.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from wtal_common.io import atomic_output, atomic_write_json

from ..canonical import DatasetError, read_json
from .flow import TVL1Flow
from .i3d import FEATURE_DIM, InceptionI3d, load_i3d

logger = logging.getLogger("wtal_data.extraction")

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "extraction.json"
STREAMS = ("rgb", "flow")


@dataclass(frozen=True)
class ExtractionSettings:
    """What the features depend on.  Sizes in pixels, ``fps`` in frames per second."""

    fps: float = 25.0
    snippet_frames: int = 16
    resize: int = 256  # shorter side before the crop
    crop: int = 224  # centre square fed to I3D
    flow: str = "tvl1"

    def __post_init__(self) -> None:
        if self.crop > self.resize:
            raise DatasetError(f"--crop {self.crop} is larger than --resize {self.resize}")
        if min(self.fps, self.snippet_frames, self.crop) <= 0:
            raise DatasetError("--fps, snippet frames and --crop must be positive")


class ExtractionError(DatasetError):
    """Some videos could not be decoded; the others were extracted."""


def sample_indices(num_source_frames: int, source_fps: float, fps: float = 25.0) -> np.ndarray:
    """Source frame shown at the middle of each output frame, at ``fps``."""
    count = max(1, round(num_source_frames * fps / source_fps))
    indices = np.floor((np.arange(count) + 0.5) * source_fps / fps).astype(np.int64)
    return np.minimum(indices, num_source_frames - 1)


def num_snippets(num_frames: int, snippet_frames: int = 16) -> int:
    return math.ceil(num_frames / snippet_frames)


def padded_indices(indices: np.ndarray, snippet_frames: int = 16) -> np.ndarray:
    """Pad to ``snippet_frames * S + 1`` frames by repeating the last: every snippet's flow has a next frame."""
    total = snippet_frames * num_snippets(len(indices), snippet_frames) + 1
    return np.concatenate([indices, np.full(total - len(indices), indices[-1], indices.dtype)])


def resize_shorter_side(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) -> (N, H', W', 3) with min(H', W') == size, aspect kept (bilinear)."""
    import cv2

    height, width = frames.shape[1:3]
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    return np.stack([cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_LINEAR) for f in frames])


def centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    height, width = frames.shape[1:3]
    top, left = (height - size) // 2, (width - size) // 2
    return frames[:, top : top + size, left : left + size]


def rgb_input(frames: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], the scaling the I3D RGB model was trained with."""
    return frames.astype(np.float32) / 127.5 - 1.0


class VideoFrames:
    """A decord reader giving the 25 fps, padded frame list; decoding errors name the video."""

    def __init__(self, path: Path, settings: ExtractionSettings) -> None:
        import decord

        self.path = path
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            count, source_fps = len(self._reader), float(self._reader.get_avg_fps())
        except Exception as exc:
            raise DatasetError(f"{path}: video '{path.stem}' cannot be decoded ({exc})") from exc
        if count < 1 or not source_fps > 0:
            raise DatasetError(f"{path}: video '{path.stem}' has {count} frames at {source_fps} fps")
        sampled = sample_indices(count, source_fps, settings.fps)
        self.frames = len(sampled)  # at settings.fps, before padding
        self.snippets = num_snippets(self.frames, settings.snippet_frames)
        self.indices = padded_indices(sampled, settings.snippet_frames)

    def get(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of the padded list as (N, H, W, 3) uint8 RGB."""
        try:
            return self._reader.get_batch(self.indices[start:stop].tolist()).asnumpy()
        except Exception as exc:
            raise DatasetError(f"{self.path}: video '{self.path.stem}' cannot be decoded ({exc})") from exc


class I3DExtractor:
    """Both streams' networks on one device, fed ``batch_size`` snippets at a time."""

    def __init__(
        self,
        rgb_model: InceptionI3d,
        flow_model: InceptionI3d,
        settings: ExtractionSettings,
        device: str = "cpu",
        batch_size: int = 8,
        flow_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if batch_size < 1:
            raise DatasetError(f"--batch-size {batch_size} must be at least 1")
        self.settings, self.device, self.batch_size = settings, torch.device(device), batch_size
        self.rgb_model, self.flow_model = rgb_model.to(self.device).eval(), flow_model.to(self.device).eval()
        self.flow_fn = flow_fn or TVL1Flow()

    def _forward(self, model: InceptionI3d, clips: np.ndarray) -> np.ndarray:
        """(B*16, S, S, C) frames -> (B, 1024) features."""
        n = self.settings.snippet_frames
        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        x = x.reshape(-1, n, *x.shape[1:]).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
        with torch.inference_mode():
            return model(x.float()).cpu().numpy().astype(np.float32)

    def video(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(S, 1024) RGB and flow features of one video."""
        s = self.settings
        frames = VideoFrames(path, s)
        rgb_out, flow_out = [], []
        for first in range(0, frames.snippets, self.batch_size):
            last = min(first + self.batch_size, frames.snippets)
            raw = frames.get(first * s.snippet_frames, last * s.snippet_frames + 1)
            resized = resize_shorter_side(raw, s.resize)
            flow = centre_crop(self.flow_fn(resized), s.crop)
            rgb = rgb_input(centre_crop(resized[:-1], s.crop))
            rgb_out.append(self._forward(self.rgb_model, rgb))
            flow_out.append(self._forward(self.flow_model, flow))
        return np.concatenate(rgb_out), np.concatenate(flow_out)


def find_videos(videos_dir: Path, ext: str = "mp4", video_ids: Sequence[str] | None = None) -> dict[str, Path]:
    if not videos_dir.is_dir():
        raise DatasetError(f"{videos_dir}: videos folder not found")
    found = {p.stem: p for p in sorted(videos_dir.glob(f"*.{ext}"))}
    if video_ids is not None:
        missing = [v for v in video_ids if v not in found]
        if missing:
            raise DatasetError(f"{videos_dir}: no {ext} file for video(s) {missing[:5]}")
        found = {v: found[v] for v in video_ids}
    if not found:
        raise DatasetError(f"{videos_dir}: no *.{ext} videos")
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_settings(output: Path, record: dict[str, Any]) -> None:
    """Write ``settings.json`` on the first run; later runs must match it field by field."""
    path = output / SETTINGS_FILE
    if path.exists():
        old = read_json(path, "extraction settings")
        changed = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if changed:
            raise DatasetError(
                f"{path}: the features in {output} were extracted with other settings ({', '.join(changed)}); "
                "use a new output folder or delete this one"
            )
    else:
        atomic_write_json(path, record)


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_output(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def is_done(output: Path, video_id: str) -> bool:
    return all((output / stream / f"{video_id}.npy").is_file() for stream in STREAMS)


def extract_videos(
    videos: dict[str, Path],
    output: Path,
    rgb_weights: Path,
    flow_weights: Path,
    settings: ExtractionSettings = ExtractionSettings(),
    device: str = "auto",
    batch_size: int = 8,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Extract every video not already done in ``output``; return the manifest.

    Raises :class:`ExtractionError` naming the videos that could not be decoded, after the
    others are written (the manifest is then not written: the folder is incomplete).
    """
    output = Path(output)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    for path in (rgb_weights, flow_weights):
        if not Path(path).is_file():
            raise DatasetError(f"{path}: I3D weight file not found")
    record = {
        **asdict(settings),
        "feature_dim": FEATURE_DIM,
        "rgb_weights_sha256": file_sha256(Path(rgb_weights)),
        "flow_weights_sha256": file_sha256(Path(flow_weights)),
    }
    output.mkdir(parents=True, exist_ok=True)
    check_settings(output, record)
    todo = [v for v in videos if not is_done(output, v)]
    logger.info(
        "%d video(s), %d already done, %d to extract on %s", len(videos), len(videos) - len(todo), len(todo), device
    )
    failed: dict[str, str] = {}
    if todo:
        extractor = I3DExtractor(
            load_i3d(rgb_weights, "rgb"), load_i3d(flow_weights, "flow"), settings, device, batch_size
        )
        show_bar = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(todo, desc="I3D features", unit="video", disable=not show_bar)
        for number, video_id in enumerate(bar, start=1):
            started = time.perf_counter()
            try:
                rgb, flow = extractor.video(videos[video_id])
            except DatasetError as exc:
                failed[video_id] = str(exc)
                logger.error("%s", exc)
                continue
            save_array(output / "rgb" / f"{video_id}.npy", rgb)
            save_array(output / "flow" / f"{video_id}.npy", flow)
            if not show_bar:
                logger.info(
                    "[%d/%d] %s: %d snippets in %.1f s",
                    number,
                    len(todo),
                    video_id,
                    len(rgb),
                    time.perf_counter() - started,
                )
    if failed:
        lines = "\n".join(f"  {v}: {msg}" for v, msg in failed.items())
        raise ExtractionError(
            f"{len(failed)} of {len(videos)} video(s) could not be decoded (the other {len(videos) - len(failed)} "
            f"are in {output}):\n{lines}"
        )
    manifest = {
        "settings": record,
        "videos": {v: int(np.load(output / "rgb" / f"{v}.npy", mmap_mode="r").shape[0]) for v in videos},
    }
    atomic_write_json(output / MANIFEST_FILE, manifest)
    return manifest
