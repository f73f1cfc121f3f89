"""Decode the frames an MLLM sees, with decord, in a background worker.

Why these choices (anchors.md §6):

* decord reads H.264 correctly and fast; it is asked for frames at *native* size,
  because resizing inside decord crashes for some small sizes.  The model's own
  processor resizes.
* One ``VideoReader`` per video, all wanted indices sorted and fetched in a single
  ``get_batch``: decord leaks memory when readers are reused or indices are random.
* A background thread decodes the next videos while the model generates, through a
  bounded queue, so the model never waits on the decoder and memory stays bounded.

Sampling: ``num_frames`` uniformly spaced frames (the centre of each of N equal
bins), or, with ``target_fps``, one frame every ``fps / target_fps`` frames; when that
gives more than ``num_frames``, ``num_frames`` of them spread over the whole video (never
just its opening seconds), and when it gives fewer, the uniform rule.  A video shorter
than N frames repeats frames so every video yields
exactly N (batched processors want equal frame counts).  Indices are frame numbers in
the decoded stream (0-based); ``fps`` is the container's average frame rate.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .settings import DEFAULTS


@dataclass
class VideoFrames:
    """Decoded frames of one video, or the error that prevented decoding."""

    video_id: str
    path: str
    frames: np.ndarray | None = None  # uint8 (T, H, W, 3)
    indices: list[int] = field(default_factory=list)
    total_frames: int = 0
    fps: float | None = None
    decode_seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sample_indices(
    total_frames: int, num_frames: int, fps: float | None = None, target_fps: float | None = None
) -> list[int]:
    """Sorted frame indices to decode; see the module docstring for the rule."""
    if total_frames <= 0:
        raise ValueError("video has no frames")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if target_fps is not None:
        if target_fps <= 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        step = max((fps or target_fps) / target_fps, 1.0)
        idx = np.arange(0.0, total_frames, step)
        if len(idx) < num_frames:  # short video: fall back to uniform so the count stays N
            return sample_indices(total_frames, num_frames)
        pick = np.floor((np.arange(num_frames) + 0.5) * len(idx) / num_frames).astype(int)  # cover the video
        return [int(idx[i]) for i in pick]
    bins = (np.arange(num_frames) + 0.5) * total_frames / num_frames
    return [int(min(total_frames - 1, i)) for i in np.floor(bins)]


def decode_video(video_id: str, path: str | Path, num_frames: int, target_fps: float | None = None) -> VideoFrames:
    """Decode one video; any failure is returned in ``error``, never raised."""
    import time

    start = time.perf_counter()
    result = VideoFrames(video_id=video_id, path=str(path))
    path = Path(path)
    try:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: video file not found")
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        try:
            result.total_frames = len(reader)
            fps = float(reader.get_avg_fps())
            result.fps = fps if np.isfinite(fps) and fps > 0 else None
            result.indices = sample_indices(result.total_frames, num_frames, result.fps, target_fps)
            frames = reader.get_batch(result.indices).asnumpy()
        finally:
            del reader
        if frames.ndim != 4 or frames.shape[0] != len(result.indices) or frames.shape[-1] != 3:
            raise ValueError(f"{path}: decoded frames have unexpected shape {frames.shape}")
        result.frames = np.ascontiguousarray(frames, dtype=np.uint8)
    except Exception as exc:  # decord raises its own DECORDError and plain RuntimeErrors
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if str(path) not in message:
            message = f"{path}: {message}"
        result.error = f"{type(exc).__name__}: {message}"[:500]
        result.frames = None
    result.decode_seconds = time.perf_counter() - start
    return result


_DONE = object()


def prefetch_videos(
    items: Iterable[tuple[str, Path]], num_frames: int, target_fps: float | None = None, depth: int = DEFAULTS.prefetch
) -> Iterator[VideoFrames]:
    """Yield decoded videos in the order given, decoding up to ``depth`` ahead in a thread."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def worker() -> None:
        try:
            for video_id, path in items:
                if stop.is_set():
                    return
                item = decode_video(video_id, path, num_frames, target_fps)
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surface unexpected worker failures to the consumer
            buffer.put(exc)
        finally:
            buffer.put(_DONE)

    thread = threading.Thread(target=worker, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so a blocked put can see the stop flag
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
