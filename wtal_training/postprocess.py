"""From per-snippet outputs to scored segments in seconds.

Each base method supplies its proposals and suppression through hooks on
:class:`~wtal_training.models.base.BaseMethod` (``video_proposals``, ``suppress``); this
module holds the default they use, the CO2-Net/DELU recipe, and the shared steps
(localization-head proposals, score merging, conversion to seconds).  The recipe:

Per video: attention-weighted CAS -> video class scores (softmax of the mean of the top
T // 10 snippets); keep classes scoring >= 0.2, else the best one; threshold the
attention at ``linspace(0.1, 0.9, n)`` (n = 20 DELU, 10 CO2-Net); every run of snippets above a threshold is a
proposal for every kept class, scored by outer-inner contrast (inner mean - mean over
margins of 0.25 x length on both sides, + 0.2 x video score).  Anchor-free proposals come
from ``loc_scores`` / ``loc_offsets`` (a localization head); ``proposal_source`` says which
are kept: ``auto`` (default) = the head's alone when the model has one (the paper's §3.4:
at inference "only the prior-guided localization head needs to be executed"), else the
base method's; ``head``; ``base``; ``merge`` = both, each score replaced by its quantile
among all proposals of its source on the evaluated split (OIC scores are logit-scale
differences, head scores sigmoid probabilities: raw, every base proposal would outrank
every head proposal).  Gaussian
soft-NMS (sigma 0.3) per (video, class), batched across all groups at once; then segments
of at most ``min_proposal_length`` snippets are dropped (DELU: 1; CO2-Net: none).  All
segment arithmetic is in snippets; conversion to seconds uses the data set's
``snippet_seconds`` and happens once, at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wtal_common.errors import ConfigError

from .models.base import BASE_METHODS

BASE, HEAD = 0, 1  # Proposals.source


@dataclass
class Proposals:
    """Candidate segments of one video, in snippet units (end exclusive)."""

    start: np.ndarray  # (N,) float
    end: np.ndarray
    score: np.ndarray
    label: np.ndarray  # (N,) int class index
    source: np.ndarray | None = None  # (N,) BASE (OIC, logit scale) or HEAD (sigmoid); None: all BASE


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def video_class_scores(cas_supp: np.ndarray, ratio: float = 10.0) -> np.ndarray:
    """(C,) probabilities from a (T, C+1) attention-weighted CAS: top-(T // ratio) mean, softmax."""
    k = max(1, int(cas_supp.shape[0] // ratio))
    top = -np.partition(-cas_supp, k - 1, axis=0)[:k] if k < cas_supp.shape[0] else cas_supp
    return softmax(top.mean(axis=0))[:-1]


def select_classes(scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    chosen = np.flatnonzero(scores >= threshold)
    return chosen if len(chosen) else np.array([int(np.argmax(scores))])


def threshold_runs(signal: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of ``signal > thr`` for every threshold."""
    above = signal[None, :] > thresholds[:, None]  # (K, T)
    padded = np.pad(above, ((0, 0), (1, 1))).astype(np.int8)
    change = np.diff(padded, axis=1)
    starts = np.nonzero(change == 1)[1]
    ends = np.nonzero(change == -1)[1]
    return starts.astype(np.int64), ends.astype(np.int64)


def outer_inner_scores(
    wtcam: np.ndarray, starts: np.ndarray, ends: np.ndarray, outer_ratio: float = 0.25
) -> np.ndarray:
    """(R, S) inner mean minus outer mean of ``wtcam`` (T, S) for runs [start, end)."""
    length_t = wtcam.shape[0]
    csum = np.concatenate([np.zeros((1, wtcam.shape[1])), np.cumsum(wtcam, axis=0)])
    lengths = (ends - starts).astype(np.float64)
    inner = (csum[ends] - csum[starts]) / lengths[:, None]
    outer_s = np.maximum(0, np.floor(starts - outer_ratio * lengths)).astype(np.int64)
    outer_e = np.minimum(length_t - 1, np.floor(ends - 1 + outer_ratio * lengths)).astype(np.int64)
    outer_e = np.maximum(outer_e, ends - 1)
    outer_sum = (csum[starts] - csum[outer_s]) + (csum[outer_e + 1] - csum[ends])
    count = (starts - outer_s) + (outer_e + 1 - ends)
    outer = np.where(count[:, None] > 0, outer_sum / np.maximum(count, 1)[:, None], 0.0)
    return inner - outer


def resolve_proposal_source(config: Any, has_head: bool) -> str:
    """``proposal_source`` with ``auto`` resolved; ``head``/``merge`` need head outputs."""
    source = str(getattr(config, "proposal_source", "auto"))
    if source == "auto":
        return "head" if has_head else "base"
    if source not in ("head", "base", "merge"):
        raise ConfigError(f"config 'proposal_source': {source!r} not in auto|head|base|merge")
    if source in ("head", "merge") and not has_head:
        raise ConfigError(f"config 'proposal_source': {source!r} needs a localization head (loc_scores outputs)")
    return source


def video_proposals(
    cas: np.ndarray,
    attention: np.ndarray,
    config: Any,
    loc_scores: np.ndarray | None = None,
    loc_offsets: np.ndarray | None = None,
    source: str = "merge",
    classes: np.ndarray | None = None,
) -> Proposals:
    """All candidate proposals of one video (before soft-NMS), raw scores.

    ``cas`` (T, C+1) logits, ``attention`` (T,); optional ``loc_scores`` (T, C) in [0, 1]
    and ``loc_offsets`` (T, 2) distances in snippets from each snippet centre to the
    start and end of its action.  ``source``: ``base`` (OIC proposals), ``head`` (loc
    proposals) or ``merge`` (both; scores are *not* comparable yet, see
    :func:`quantile_normalise`).  The kept classes come from the base CAS in every case,
    unless ``classes`` names them.
    """
    cas_supp = cas * attention[:, None]
    scores = video_class_scores(cas_supp, config.video_score_ratio)
    chosen = select_classes(scores, config.class_threshold) if classes is None else np.asarray(classes, dtype=np.int64)
    thresholds = np.linspace(0.1, 0.9, config.num_thresholds)
    starts, ends = threshold_runs(attention, thresholds)
    parts = []
    if len(starts) and source in ("base", "merge"):
        contrast = outer_inner_scores(cas_supp[:, chosen], starts, ends, config.outer_ratio)
        contrast = contrast + config.gamma_oic * scores[chosen][None, :]
        r = len(starts)
        parts.append(
            (
                np.repeat(starts, len(chosen)).astype(np.float64),
                np.repeat(ends, len(chosen)).astype(np.float64),
                contrast.reshape(-1),
                np.tile(chosen, r),
                np.full(r * len(chosen), BASE),
            )
        )
    if loc_scores is not None and loc_offsets is not None and source in ("head", "merge"):
        parts += head_proposal_parts(loc_scores, loc_offsets, chosen, config, scores)
    return proposals_from_parts(parts)


def head_proposal_parts(
    loc_scores: np.ndarray,
    loc_offsets: np.ndarray,
    chosen: np.ndarray,
    config: Any,
    class_scores: np.ndarray | None = None,
) -> list[tuple[np.ndarray, ...]]:
    """Anchor-free proposals of a localization head for the ``chosen`` classes, as parts
    (start, end, score, label, source) of :func:`proposals_from_parts` (any base method).

    Ranked as detection heads rank (ActionFormer): a snippet's proposal for class c scores
    ``loc_scores[t, c] * class_scores[c]`` (the head's probability times the base method's
    video-level score of c, so a class the video barely shows cannot outrank one it clearly
    shows), candidates below ``loc_score_threshold`` (a low floor, 0.001) are dropped, the
    best ``max_proposals_per_class`` per class kept; the suppression comes after."""
    if str(getattr(config, "loc_decode", "runs")) == "runs":
        return head_run_parts(loc_scores, chosen, config, class_scores)
    parts = []
    length_t = loc_scores.shape[0]
    centre = np.arange(length_t) + 0.5
    for c in chosen:
        s = loc_scores[:, c] * (float(class_scores[c]) if class_scores is not None else 1.0)
        keep = np.flatnonzero(s >= config.loc_score_threshold)
        if len(keep) > config.max_proposals_per_class:
            keep = keep[np.argsort(-s[keep], kind="stable")[: config.max_proposals_per_class]]
        st = np.clip(centre[keep] - loc_offsets[keep, 0], 0, length_t)
        en = np.clip(centre[keep] + loc_offsets[keep, 1], 0, length_t)
        ok = en > st
        n_ok = int(ok.sum())
        parts.append((st[ok], en[ok], s[keep][ok].astype(np.float64), np.full(n_ok, c), np.full(n_ok, HEAD)))
    return parts


def head_run_parts(
    loc_scores: np.ndarray, chosen: np.ndarray, config: Any, class_scores: np.ndarray | None = None
) -> list[tuple[np.ndarray, ...]]:
    """Head proposals decoded from its class probabilities as the CO2-Net/DELU recipe decodes
    the attention (``loc_decode: runs``, the default): every run of ``loc_scores[:, c] > thr``
    for ``thr`` in linspace(0.1, 0.9, num_thresholds) is a proposal for class c, scored by the
    outer-inner contrast of that probability + ``gamma_oic`` x the video class score.

    Why not the regressed segments: trained from pseudo-labels whose boundaries are the base's
    runs, the per-snippet regression reached IoU ~0.45 with them and its segments scored 29-36
    avg mAP@0.1:0.7 on held-out training videos where these runs scored 39-49 (the same heads;
    docs/method.md).  The regression branch still trains the head's trunk (eq. 18)."""
    parts = []
    thresholds = np.linspace(0.1, 0.9, config.num_thresholds)
    for c in chosen:
        signal = loc_scores[:, c].astype(np.float64)
        starts, ends = threshold_runs(signal, thresholds)
        if not len(starts):
            continue
        score = outer_inner_scores(signal[:, None], starts, ends, config.outer_ratio)[:, 0]
        score = score + config.gamma_oic * (float(class_scores[c]) if class_scores is not None else 1.0)
        n = len(starts)
        parts.append((starts.astype(np.float64), ends.astype(np.float64), score, np.full(n, c), np.full(n, HEAD)))
    return parts


def proposals_from_parts(parts: list[tuple[np.ndarray, ...]]) -> Proposals:
    if not parts:
        empty = np.zeros(0)
        return Proposals(empty, empty, empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return Proposals(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


def quantile_normalise(scores: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Each score -> the fraction of its source's scores that are <= it (in (0, 1]).

    Rank normalisation over every proposal of the evaluated split, per source: the order
    within a source is kept (across videos too, which AP needs), and the two sources are
    interleaved by quantile instead of by incomparable raw values.  Uses no labels.
    """
    out = np.empty_like(scores, dtype=np.float64)
    for src in np.unique(sources):
        sel = sources == src
        ranked = np.sort(scores[sel])
        out[sel] = np.searchsorted(ranked, scores[sel], side="right") / len(ranked)
    return out


def batched_soft_nms(
    groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], sigma: float = 0.3, chunk: int = 128
) -> list[np.ndarray]:
    """Gaussian soft-NMS for many independent groups; returns each group's decayed scores.

    Groups of similar size are padded together into (G, N) and processed with N
    vectorised greedy steps: pick each group's best remaining proposal, decay the
    others by ``exp(-IoU^2 / sigma)``.  Every proposal is kept (as the public code).
    """
    out: list[np.ndarray] = [np.zeros(0)] * len(groups)
    order = sorted(range(len(groups)), key=lambda g: len(groups[g][0]))
    for i in range(0, len(order), chunk):
        ids = [g for g in order[i : i + chunk] if len(groups[g][0])]
        if not ids:
            continue
        n = max(len(groups[g][0]) for g in ids)
        s = np.full((len(ids), n), 0.0)
        e = np.full((len(ids), n), 0.0)
        score = np.full((len(ids), n), -np.inf)
        for row, g in enumerate(ids):
            m = len(groups[g][0])
            s[row, :m], e[row, :m], score[row, :m] = groups[g]
        final = np.full_like(score, -np.inf)
        alive = np.isfinite(score)
        rows = np.arange(len(ids))
        for _ in range(n):
            if not alive.any():
                break
            masked = np.where(alive, score, -np.inf)
            best = masked.argmax(axis=1)
            has = alive[rows, best]
            final[rows[has], best[has]] = score[rows[has], best[has]]
            alive[rows[has], best[has]] = False
            bs, be = s[rows, best][:, None], e[rows, best][:, None]
            inter = np.clip(np.minimum(be, e) - np.maximum(bs, s), 0, None)
            union = (be - bs) + (e - s) - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
            decay = np.exp(-(iou**2) / sigma)
            score = np.where(alive & has[:, None], score * decay, score)
        for row, g in enumerate(ids):
            out[g] = final[row, : len(groups[g][0])]
    return out


def predictions_from_outputs(
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    gt: Mapping[str, Any],
    config: Any,
) -> dict[str, Any]:
    """Official ActivityNet results JSON from per-video raw outputs.

    ``outputs[video_id]`` holds ``cas`` (T, C+1), ``attention`` (T,) and optionally
    ``loc_scores``/``loc_offsets``.  Segments are converted to seconds with the data
    set's ``snippet_seconds`` and clipped to the video duration.
    """
    classes = gt["classes"]
    seconds = float(gt["snippet_seconds"])
    has_head = bool(outputs) and all(
        o.get("loc_scores") is not None and o.get("loc_offsets") is not None for o in outputs.values()
    )
    source = resolve_proposal_source(config, has_head)
    method = BASE_METHODS[config.method]  # its proposal and suppression hooks (models/base.py)
    per_video = {vid: method.video_proposals(out, config, source) for vid, out in outputs.items()}
    if source == "merge" and per_video:
        flat = quantile_normalise(
            np.concatenate([p.score for p in per_video.values()]),
            np.concatenate([p.source for p in per_video.values()]),
        )
        offset = 0
        for props in per_video.values():
            props.score, offset = flat[offset : offset + len(props.score)], offset + len(props.score)
    groups, keys = [], []
    for vid, props in per_video.items():
        for c in np.unique(props.label):
            sel = props.label == c
            groups.append((props.start[sel], props.end[sel], props.score[sel]))
            keys.append((vid, int(c)))
    decayed = method.suppress(groups, config)
    min_length = float(getattr(config, "min_proposal_length", 0.0))
    results: dict[str, list[dict[str, Any]]] = {vid: [] for vid in outputs}
    for (vid, c), (st, en, _), sc in zip(keys, groups, decayed):
        duration = float(gt["database"][vid]["duration"])
        keep = ((en - st) > min_length) & np.isfinite(sc)  # after NMS, in snippets, as DELU's test.py
        start_s, end_s = np.minimum(st[keep] * seconds, duration), np.minimum(en[keep] * seconds, duration)
        inside = end_s > start_s  # snippets past the annotated duration (0.64 s steps overrun it) are no detection
        for a, b, p in zip(start_s[inside], end_s[inside], sc[keep][inside]):
            results[vid].append(
                {"label": classes[c], "score": float(p), "segment": [round(float(a), 3), round(float(b), 3)]}
            )
    for vid in results:
        results[vid].sort(key=lambda r: -r["score"])
    return {"version": "ActivityNet-style detection results", "results": results, "external_data": {"used": False}}
