"""Per-video timelines like the paper's Fig. 3: ground truth, top predictions, attention.

A video whose ``gt`` entry has no ``annotations`` key (``predict`` on feature files) has no
known ground truth: its GT row says so instead of showing an empty row.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.io import atomic_write_bytes


def attention_times(samples: int, video_snippets: int, snippet_seconds: float) -> np.ndarray:
    """Time in seconds of each attention sample.

    A method that resamples its input (UM sees at most ``max_seqlen`` snippets, 750 by
    default, of a longer video) gives one attention value per ``video_snippets / samples``
    original snippets; without this its curve would be drawn at ``samples`` snippets'
    length, not the video's.
    """
    return (np.arange(samples) + 0.5) * (video_snippets / max(samples, 1)) * snippet_seconds


def plot_timeline(
    gt: Mapping[str, Any],
    video_id: str,
    attention: np.ndarray,
    predictions: list[dict],
    top: int = 10,
    video_snippets: int | None = None,
) -> bytes:
    """PNG bytes: GT segments, the ``top`` highest-scoring predictions and the attention curve
    (seconds).  ``video_snippets``: the video's length in snippets when the network saw a
    resampled version of it (the inference output's ``video_length``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entry = gt["database"][video_id]
    seconds = float(gt["snippet_seconds"])
    duration = float(entry["duration"])
    fig, axes = plt.subplots(3, 1, figsize=(10, 3.6), sharex=True, gridspec_kw={"height_ratios": [1, 1, 1.6]})
    known = "annotations" in entry
    for ann in entry.get("annotations", []):
        a, b = ann["segment"]
        axes[0].axvspan(a, b, color="tab:green", alpha=0.7)
    if not known:
        axes[0].text(0.5, 0.5, "ground truth unknown", transform=axes[0].transAxes, ha="center", va="center")
    axes[0].set_ylabel("GT")
    preds = sorted(predictions, key=lambda p: -p["score"])[:top]
    if preds:
        hi = max(p["score"] for p in preds)
        lo = min(p["score"] for p in preds)
        for p in preds:
            a, b = p["segment"]
            strength = 0.25 + 0.65 * ((p["score"] - lo) / (hi - lo) if hi > lo else 1.0)
            axes[1].axvspan(a, b, color="tab:red", alpha=strength)
    axes[1].set_ylabel(f"Pred\n(top {top})")
    t = attention_times(len(attention), video_snippets or len(attention), seconds)
    axes[2].plot(t, attention, color="tab:blue", lw=1)
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("attention")
    axes[2].set_xlabel("time (s)")
    for ax in axes[:2]:
        ax.set_yticks([])
    axes[0].set_xlim(0, duration)
    labels = ", ".join(entry.get("labels", [])) or "no label"
    if not known:
        labels = "ground truth unknown" + (f"; best detection: {preds[0]['label']}" if preds else "")
    synthetic = " [synthetic data]" if entry.get("synthetic", gt.get("synthetic")) else ""
    fig.suptitle(f"{video_id} ({labels}){synthetic}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def plot_timelines(
    directory: Path,
    gt: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    predictions: Mapping[str, Any],
    count: int | None,
    annotated_only: bool = True,
) -> list[Path]:
    """Timelines of the first ``count`` videos (sorted ids; ``None``: all), by default only
    of those that have annotations."""
    chosen = [v for v in sorted(outputs) if not annotated_only or gt["database"][v].get("annotations")][:count]
    paths = []
    for vid in chosen:
        path = Path(directory) / f"{vid}.png"
        entry = outputs[vid]
        video_snippets = int(entry["video_length"]) if "video_length" in entry else None
        png = plot_timeline(
            gt, vid, entry["attention"], predictions["results"].get(vid, []), video_snippets=video_snippets
        )
        atomic_write_bytes(path, png)
        paths.append(path)
    return paths
