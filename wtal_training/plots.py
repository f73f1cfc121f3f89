"""Per-video timelines like the paper's Fig. 3, and one overview page of all plotted videos.

A video's timeline (``<video>.png``) has, over a shared time axis in seconds:

* **ground truth**: one lane per annotated class (dark bars); a video whose ``gt`` entry has
  no ``annotations`` key (``predict`` on feature files) says "ground truth unknown" instead;
* **detections**: the ``top`` best final detections, one lane each (best on top, so
  overlapping segments never hide each other), coloured by score (colorbar) and labelled
  with class and score;
* **head / base proposals** (only when the model has a localization head and the plot is
  given the ``config``): the best detections each proposal source alone would give, on
  rows of their own; without the config only the signals below tell the sources apart
  (the detections JSON does not record which source a detection came from);
* **signals**: the base method's attention and, with a localization head, the head's
  per-snippet score for the best detection's class.

A legend names every element.  ``plot_timelines`` also writes ``overview.png``: one panel
per plotted video (ground truth and its best detections on the same colour scale).
Scores are each method's ranking scores (OIC contrast, a head probability or, merged, a
quantile), not probabilities: the colour scale is shared by all videos of one call.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.io import atomic_write_bytes

TOP_DETECTIONS = 5  # detection lanes of a video's timeline
TOP_PER_SOURCE = 3  # lanes of the head and base proposal rows
OVERVIEW_TOP = 3  # detection lanes per overview panel
OVERVIEW_FILE = "overview.png"
SCORE_CMAP = "viridis"
GT_COLOR = "0.25"
SOURCE_COLORS = {"head": "tab:orange", "base": "tab:blue"}
ATTENTION_COLOR = "tab:blue"
HEAD_SCORE_COLOR = "tab:orange"
DPI = 100


def attention_times(samples: int, video_snippets: int, snippet_seconds: float) -> np.ndarray:
    """Time in seconds of each attention sample.

    A method that resamples its input (UM sees at most ``max_seqlen`` snippets, 750 by
    default, of a longer video) gives one attention value per ``video_snippets / samples``
    original snippets; without this its curve would be drawn at ``samples`` snippets'
    length, not the video's.
    """
    return (np.arange(samples) + 0.5) * (video_snippets / max(samples, 1)) * snippet_seconds


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_norm(detections: Sequence[Mapping[str, Any]]):
    """A linear colour scale spanning ``detections``' scores (0 to 1 when there are none)."""
    from matplotlib.colors import Normalize

    scores = [float(d["score"]) for d in detections]
    if not scores:
        return Normalize(0.0, 1.0)
    lo, hi = min(scores), max(scores)
    if hi - lo < 1e-12:
        pad = max(abs(hi) * 0.05, 1e-6)
        lo, hi = lo - pad, hi + pad
    return Normalize(lo, hi)


def _top(detections: Sequence[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    return sorted(detections, key=lambda d: -float(d["score"]))[:count]


def _video_snippets(output: Mapping[str, Any]) -> int | None:
    return int(output["video_length"]) if "video_length" in output else None


def _ground_truth_lanes(ax, entry: Mapping[str, Any], duration: float, fontsize: float = 8) -> None:
    """One lane per annotated class, or a note that the ground truth is unknown / empty."""
    if "annotations" not in entry:
        ax.text(0.5, 0.5, "ground truth unknown", transform=ax.transAxes, ha="center", va="center", fontsize=fontsize)
        ax.set_yticks([])
        return
    classes = sorted({a["label"] for a in entry["annotations"]})
    if not classes:
        ax.text(0.5, 0.5, "no annotated action", transform=ax.transAxes, ha="center", va="center", fontsize=fontsize)
        ax.set_yticks([])
        return
    for ann in entry["annotations"]:
        a, b = ann["segment"]
        ax.barh(classes.index(ann["label"]), b - a, left=a, height=0.7, color=GT_COLOR)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.set_yticks(range(len(classes)), classes, fontsize=fontsize)


def _detection_lanes(ax, detections, color_of, fontsize: float = 8, empty: str = "no detections") -> None:
    """One lane per detection, best on top; tick labels give class and score."""
    if not detections:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=fontsize)
        ax.set_yticks([])
        return
    for lane, det in enumerate(detections):
        a, b = det["segment"]
        ax.barh(lane, b - a, left=a, height=0.7, color=color_of(det), edgecolor="black", linewidth=0.4)
    ax.set_ylim(len(detections) - 0.5, -0.5)
    labels = [f"{d['label']} {float(d['score']):.3g}" for d in detections]
    ax.set_yticks(range(len(detections)), labels, fontsize=fontsize)


def _row_title(ax, text: str) -> None:
    ax.set_title(text, loc="left", fontsize=8, pad=2)


def _title(gt: Mapping[str, Any], video_id: str, best: Sequence[Mapping[str, Any]]) -> str:
    entry = gt["database"][video_id]
    if "annotations" in entry:
        labels = ", ".join(entry.get("labels", [])) or ", ".join(sorted({a["label"] for a in entry["annotations"]}))
        labels = labels or "no label"
    else:
        labels = "ground truth unknown" + (f"; best detection: {best[0]['label']}" if best else "")
    synthetic = " [synthetic data]" if entry.get("synthetic", gt.get("synthetic")) else ""
    return f"{video_id} ({labels}){synthetic}"


def timeline_figure(
    gt: Mapping[str, Any],
    video_id: str,
    output: Mapping[str, np.ndarray],
    detections: Sequence[Mapping[str, Any]],
    top: int = TOP_DETECTIONS,
    by_source: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    final_source: str | None = None,
    norm: Any = None,
):
    """The matplotlib Figure of one video's timeline (see the module docstring).

    ``output``: the video's inference output (``attention``; ``loc_scores`` with a
    localization head; ``video_length`` when the network saw a resampled video).
    ``by_source``: {"head": detections, "base": detections} from each proposal source
    alone (drawn on rows of their own); ``final_source``: which source the detections
    come from; ``norm``: the colour scale (default: this video's shown scores)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    entry = gt["database"][video_id]
    seconds = float(gt["snippet_seconds"])
    duration = float(entry["duration"])
    shown = _top(detections, top)
    norm = norm or score_norm(shown)
    cmap = colormaps[SCORE_CMAP]
    sources = [s for s in ("head", "base") if by_source and s in by_source]
    per_source = {s: _top(by_source[s], TOP_PER_SOURCE) for s in sources}

    gt_lanes = max(1, len({a["label"] for a in entry.get("annotations", [])}))
    rows = [("gt", 0.35 + 0.25 * gt_lanes), ("det", 0.35 + 0.25 * max(1, len(shown)))]
    rows += [(s, 0.35 + 0.22 * max(1, len(per_source[s]))) for s in sources]
    rows.append(("signals", 1.3))
    height = sum(h for _, h in rows) + 1.3
    fig = plt.figure(figsize=(11, height), layout="constrained")
    grid = fig.add_gridspec(len(rows), 2, height_ratios=[h for _, h in rows], width_ratios=[60, 1])
    axes = {}
    for i, (name, _) in enumerate(rows):
        axes[name] = fig.add_subplot(grid[i, 0], sharex=axes.get("gt"))
        axes[name].set_label(name)

    _ground_truth_lanes(axes["gt"], entry, duration)
    axes["gt"].set_ylabel("ground\ntruth", fontsize=9)

    _detection_lanes(axes["det"], shown, lambda d: cmap(norm(float(d["score"]))))
    axes["det"].set_ylabel("detections", fontsize=9)
    origin = f", from the {final_source} proposals" if final_source else ""
    _row_title(axes["det"], f"top {len(shown)} of {len(detections)} detections, best on top{origin}")
    cax = fig.add_subplot(grid[1, 1])
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    colorbar.set_label("detection score", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)

    for s in sources:
        _detection_lanes(axes[s], per_source[s], lambda d, s=s: SOURCE_COLORS[s], empty=f"no {s} proposal")
        axes[s].set_ylabel(f"{s}\nproposals", fontsize=9)
        _row_title(axes[s], f"{s} proposals alone, after suppression: top {len(per_source[s])} of {len(by_source[s])}")

    ax = axes["signals"]
    attention = np.asarray(output["attention"], dtype=float)
    snippets = _video_snippets(output) or len(attention)
    ax.plot(attention_times(len(attention), snippets, seconds), attention, color=ATTENTION_COLOR, lw=1.2)
    handles = [
        Patch(color=GT_COLOR, label="ground truth"),
        Patch(facecolor=cmap(0.75), edgecolor="black", linewidth=0.4, label="detection (colour: score)"),
    ]
    handles += [Patch(color=SOURCE_COLORS[s], label=f"{s} proposal") for s in sources]
    handles.append(Line2D([], [], color=ATTENTION_COLOR, lw=1.2, label="attention (base method)"))
    loc_scores = output.get("loc_scores")
    if loc_scores is not None and len(loc_scores):
        loc_scores = np.asarray(loc_scores, dtype=float)
        classes = list(gt["classes"])
        label = shown[0]["label"] if shown and shown[0]["label"] in classes else None
        column = classes.index(label) if label else int(np.argmax(loc_scores.mean(axis=0)))
        times = attention_times(len(loc_scores), snippets, seconds)
        ax.plot(times, loc_scores[:, column], color=HEAD_SCORE_COLOR, lw=1.2, ls="--")
        name = f"head score ({classes[column]})" if column < len(classes) else "head score"
        handles.append(Line2D([], [], color=HEAD_SCORE_COLOR, lw=1.2, ls="--", label=name))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("per-snippet\nscore", fontsize=9)
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, duration)
    for name, _ in rows[:-1]:
        axes[name].tick_params(labelbottom=False)
        axes[name].grid(axis="x", color="0.85", lw=0.6)
        axes[name].set_axisbelow(True)
    ax.grid(axis="x", color="0.85", lw=0.6)
    fig.suptitle(_title(gt, video_id, shown), fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def overview_figure(
    gt: Mapping[str, Any],
    video_ids: Sequence[str],
    predictions: Mapping[str, Any],
    top: int = OVERVIEW_TOP,
    norm: Any = None,
):
    """One panel per video (ground truth lanes above its ``top`` best detections, coloured
    on one score scale), a shared colorbar and a legend; each panel's label is its video id."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.patches import Patch

    plt = _pyplot()
    results = predictions.get("results", {})
    shown = {v: _top(results.get(v, []), top) for v in video_ids}
    norm = norm or score_norm([d for items in shown.values() for d in items])
    cmap = colormaps[SCORE_CMAP]
    n = len(video_ids)
    ncols = 1 if n <= 3 else 2 if n <= 24 else 3 if n <= 60 else 4
    nrows = math.ceil(n / ncols)
    # A fixed layout in inches (constrained layout costs minutes for a few hundred panels):
    # panels 4.8 x 0.75 in, room for tick labels left of each column and for titles above.
    panel_w, panel_h, gap_w, gap_h = 4.8, 0.75, 1.45, 0.5
    left, right, top_margin, bottom = 1.45, 1.1, 0.75, 0.75
    width = left + ncols * panel_w + (ncols - 1) * gap_w + right
    height = top_margin + nrows * panel_h + (nrows - 1) * gap_h + bottom
    fig = plt.figure(figsize=(width, height))
    grid = fig.add_gridspec(
        nrows,
        ncols,
        left=left / width,
        right=1 - right / width,
        top=1 - top_margin / height,
        bottom=bottom / height,
        wspace=gap_w / panel_w,
        hspace=gap_h / panel_h,
    )
    panels = []
    for i, vid in enumerate(video_ids):
        ax = fig.add_subplot(grid[i // ncols, i % ncols])
        ax.set_label(vid)
        panels.append(ax)
        entry = gt["database"][vid]
        known = "annotations" in entry
        for ann in entry.get("annotations", []):
            a, b = ann["segment"]
            ax.barh(0, b - a, left=a, height=0.7, color=GT_COLOR)
        for lane, det in enumerate(shown[vid], start=1):
            a, b = det["segment"]
            color = cmap(norm(float(det["score"])))
            ax.barh(lane, b - a, left=a, height=0.7, color=color, edgecolor="black", linewidth=0.3)
        lanes = 1 + max(len(shown[vid]), 1)
        ax.set_ylim(lanes - 0.5, -0.5)
        ticks = ["GT" if known else "GT ?"] + [f"{d['label'][:18]} {float(d['score']):.2g}" for d in shown[vid]]
        ax.set_yticks(range(len(ticks)), ticks, fontsize=6)
        if not shown[vid]:
            ax.text(0.5, 1 / lanes * 0.5, "no detections", transform=ax.transAxes, ha="center", fontsize=6)
        ax.set_xlim(0, float(entry["duration"]))
        ax.tick_params(axis="x", labelsize=6, pad=1)
        ax.set_title(_title(gt, vid, shown[vid]), fontsize=7, pad=2)
        ax.grid(axis="x", color="0.85", lw=0.5)
        ax.set_axisbelow(True)
    grid_top = 1 - top_margin / height
    bar_h = min(nrows * panel_h + (nrows - 1) * gap_h, 4.0) / height
    cax = fig.add_axes((1 - (right - 0.25) / width, grid_top - bar_h, 0.15 / width, bar_h))
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    colorbar.set_label("detection score", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    handles = [
        Patch(color=GT_COLOR, label="ground truth"),
        Patch(facecolor=cmap(0.75), edgecolor="black", linewidth=0.3, label=f"top {top} detections (colour: score)"),
    ]
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.05 / height), ncols=2, fontsize=8, frameon=False
    )
    title = f"{n} video{'s' if n != 1 else ''}: ground truth and best detections; x axis: time (s)"
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of ``fig``, which is then closed."""
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def plot_timeline(
    gt: Mapping[str, Any],
    video_id: str,
    output: Mapping[str, np.ndarray],
    detections: Sequence[Mapping[str, Any]],
    **options: Any,
) -> bytes:
    """PNG bytes of :func:`timeline_figure` (same arguments)."""
    return figure_png(timeline_figure(gt, video_id, output, detections, **options))


def detections_by_source(
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    gt: Mapping[str, Any],
    config: Any,
    video_ids: Sequence[str],
    source: str = "auto",
) -> tuple[dict[str, dict[str, list]] | None, str | None]:
    """({"head": results, "base": results}, the final source) when the model has a
    localization head: the post-processing run once per proposal source on ``video_ids``
    (``source``: what the final detections used, ``auto`` resolved here).  (None, final
    source) without a head; (None, None) without ``config``."""
    if config is None or not video_ids:
        return None, None
    from .postprocess import has_head_outputs, predictions_from_outputs, resolve_proposal_source

    chosen = {v: outputs[v] for v in video_ids}
    has_head = has_head_outputs(chosen)
    final = resolve_proposal_source(source, has_head)
    if not has_head:
        return None, final
    results = {single: predictions_from_outputs(chosen, gt, config, single)["results"] for single in ("head", "base")}
    return results, final


def overview_path(directory: Path, video_ids: Sequence[str]) -> Path:
    """``overview.png``, unless a plotted video is called "overview": then ``_overview.png`` (...)."""
    name = OVERVIEW_FILE
    while Path(name).stem in video_ids:
        name = "_" + name
    return Path(directory) / name


def plot_timelines(
    directory: Path,
    gt: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    predictions: Mapping[str, Any],
    count: int | None,
    annotated_only: bool = True,
    config: Any = None,
    top: int = TOP_DETECTIONS,
    source: str = "auto",
) -> list[Path]:
    """Timelines of the first ``count`` videos (sorted ids; ``None``: all), by default only
    of those that have annotations, then ``overview.png`` with one panel per plotted video
    (not written when no video is plotted).  ``config`` (the model's training config) adds
    the head and base proposal rows to a model with a localization head; ``source`` is the
    proposal source of ``predictions``.  Returns the paths written, the overview last."""
    chosen = [v for v in sorted(outputs) if not annotated_only or gt["database"][v].get("annotations")][:count]
    if not chosen:
        return []
    results = predictions.get("results", {})
    norm = score_norm([d for v in chosen for d in _top(results.get(v, []), top)])
    by_source, final_source = detections_by_source(outputs, gt, config, chosen, source)
    paths = []
    for vid in chosen:
        sources = {s: by_source[s].get(vid, []) for s in by_source} if by_source else None
        png = plot_timeline(
            gt,
            vid,
            outputs[vid],
            results.get(vid, []),
            top=top,
            by_source=sources,
            final_source=final_source,
            norm=norm,
        )
        path = Path(directory) / f"{vid}.png"
        atomic_write_bytes(path, png)
        paths.append(path)
    overview = overview_path(directory, chosen)
    atomic_write_bytes(overview, figure_png(overview_figure(gt, chosen, predictions, norm=norm)))
    return [*paths, overview]
