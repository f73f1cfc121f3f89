"""Render a synthetic video's script to a small H.264 mp4, so the MLLM stage has real files.

Each frame shows the event at its time: the word picks a colour and a stripe period
(stable hash), the kind picks a pattern (phase: horizontal stripes moving down, context:
vertical stripes, background: checkerboard).  Videos therefore differ exactly where
their scripts differ, and a frame's content is recoverable from the script.

Encoded with imageio-ffmpeg's bundled ffmpeg (libx264, yuv420p), written to a temporary
file and renamed, so a crash never leaves a truncated .mp4 behind.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.io import atomic_output

from .scripts import SynthConfigError, event_at, stable_seed


def word_style(word: str) -> tuple[np.ndarray, int]:
    """(RGB colour uint8, stripe period in pixels) for a word; the same on every machine."""
    h = stable_seed("render", word)
    hue = (h % 360) / 360.0
    rgb = colorsys.hsv_to_rgb(hue, 0.55 + 0.4 * ((h >> 9) % 100) / 100, 0.85)
    period = 4 + (h >> 17) % 13
    return (np.array(rgb) * 255).astype(np.uint8), int(period)


def render_frame(event: Mapping[str, Any], t: float, size: int) -> np.ndarray:
    colour, period = word_style(event["word"])
    yy, xx = np.mgrid[0:size, 0:size]
    shift = int(t * 8)
    if event["kind"] == "phase":
        on = ((yy - shift) // period) % 2 == 0
    elif event["kind"] == "context":
        on = (xx // period) % 2 == 0
    else:
        on = ((xx // period) + (yy // period)) % 2 == 0
    frame = np.empty((size, size, 3), np.uint8)
    frame[:] = colour // 3
    frame[on] = colour
    return frame


def num_frames(duration: float, fps: float) -> int:
    return max(1, int(round(duration * fps)))


def render_video(record: Mapping[str, Any], path: str | Path, fps: float, size: int = 64) -> Path:
    """Write ``record`` (one scripts.json video entry) to ``path`` as H.264; return the path."""
    import imageio_ffmpeg

    if size % 16:
        raise SynthConfigError(f"demo.frame_size {size}: must be a multiple of 16 (H.264 macroblocks)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    events = record["events"]
    n = num_frames(float(record["duration"]), fps)
    with atomic_output(path, suffix=".mp4") as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (size, size),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=16,
            output_params=["-preset", "veryfast", "-crf", "28"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for i in range(n):
            t = (i + 0.5) / fps
            writer.send(np.ascontiguousarray(render_frame(event_at(events, t), t, size)))
        writer.close()
    return path
