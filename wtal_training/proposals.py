"""Proposal arithmetic shared by every base method and the localization head: candidate
segments of one video in snippet units, their scoring by thresholded runs and outer-inner
contrast, rank normalisation across sources and batched Gaussian soft-NMS.

Numpy only and free of any method: the methods' own recipes (``models/*``), the head's
decoding (:mod:`.head_proposals`) and the assembly into detections (:mod:`.postprocess`)
build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BASE, HEAD = 0, 1  # Proposals.source: the base method's own proposals, the localization head's


@dataclass
class Proposals:
    """Candidate segments of one video, in snippet units (end exclusive)."""

    start: np.ndarray  # (N,) float
    end: np.ndarray
    score: np.ndarray
    label: np.ndarray  # (N,) int class index
    source: np.ndarray | None = None  # (N,) BASE (the method's scale) or HEAD (sigmoid-based); None: all BASE

    def __len__(self) -> int:
        return len(self.score)


def proposals_from_parts(parts: Sequence[tuple[np.ndarray, ...]]) -> Proposals:
    """One :class:`Proposals` from (start, end, score, label, source) parts, in their order."""
    if not parts:
        empty = np.zeros(0)
        return Proposals(empty, empty, empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return Proposals(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


def concatenate(proposals: Sequence[Proposals]) -> Proposals:
    """The proposals of several sources of one video, in the given order."""
    return proposals_from_parts([(p.start, p.end, p.score, p.label, p.source) for p in proposals])


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
    """Classes scoring at least ``threshold``, else the best one."""
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


def soft_nms_per_class(proposals: Proposals, sigma: float) -> Proposals:
    """``proposals`` with each class's scores decayed by :func:`batched_soft_nms` on their own."""
    classes = np.unique(proposals.label)
    selections = [proposals.label == c for c in classes]
    groups = [(proposals.start[sel], proposals.end[sel], proposals.score[sel]) for sel in selections]
    score = np.asarray(proposals.score, dtype=np.float64).copy()
    for sel, decayed in zip(selections, batched_soft_nms(groups, sigma=sigma)):
        score[sel] = decayed
    return Proposals(proposals.start, proposals.end, score, proposals.label, proposals.source)
