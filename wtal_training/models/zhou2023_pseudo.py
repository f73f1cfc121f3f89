"""Zhou et al. 2023's proposals, their Gaussian-weighted fusion and the pseudo-labels solved
from them (zhou745/GauFuse_WSTAL ``evaluation/detectionMAP.py`` ``getActLoc`` /
``NonMaximumSuppression`` and ``utils/utils.py`` ``generate_segs`` /
``prediction_fuse_module`` / ``convert_segment_to_tensor``), rewritten.

One recipe serves test time and training ("bridging the train-test gap"):

* **Proposals** of class c: every run of ``frame[:, c] > thr`` for ``thr`` in
  ``cas_thresholds`` (the public ``arange(0.001, 0.04, 0.002)``) of at least 2 snippets,
  ``frame = class probability x attention``.  A run [s, e) gives the segment [s, e + 1)
  (the public code's extra snippet), the *inner* score ``mean(frame[s : e + 1])`` and the
  score ``inner - mean(frame[outer])``, outer = ``[s - m, s)`` and ``[e + 1, e + m + 1)``
  with ``m = 0.0785 len^0.9`` truncated and clipped to the video (the last snippet is never
  outer), 0 when empty.
* **Fusion** (instead of NMS): repeatedly take the best-scoring proposal and every other
  one whose overlap ``(min end - max start + 1) / (its end - its start + 1)`` exceeds 0.25;
  replace them by one proposal whose start, end and score are their means weighted by
  ``exp(inner / temperature)``.
* **Pseudo-labels** (training): for each class c (background included) whose video score
  is at least ``class_threshold``, the per-snippet values ``x`` in [0, 1] of least total sum
  with, for every fused proposal, ``sum(x[inner]) - sum(x[outer]) = score``: a linear
  program (PuLP's CBC; the public code uses scipy's ``linprog``).  Columns of other classes
  are 0.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..proposals import BASE, Proposals, proposals_from_parts, softmax, threshold_runs

log = logging.getLogger("wtal_training")

OUTER_SCALE = 0.0785  # outer margin: OUTER_SCALE * length ** OUTER_POWER snippets
OUTER_POWER = 0.9
MIN_RUN = 2  # snippets
FUSION_OVERLAP = 0.25


def _outer_bounds(start: np.ndarray, end: np.ndarray, length_t: int) -> tuple[np.ndarray, np.ndarray]:
    """Outer window [outer_s, start) and [end, outer_e) of segments [start, end) (integers)."""
    margin = OUTER_SCALE * (end - start).astype(np.float64) ** OUTER_POWER
    outer_s = np.maximum(0, np.trunc(start - margin)).astype(np.int64)
    outer_e = np.minimum(length_t - 1, np.trunc(end + margin + 1)).astype(np.int64)
    return outer_s, outer_e


def class_proposals(frame: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """(N, 4) proposals [start, end, score, inner] of one class's ``frame`` (T,) scores.

    Means are float32 means of the float32 scores, as the public code computes them: the
    fused bounds are truncated to snippets later, so even rounding can move a bound.
    """
    frame = np.asarray(frame, dtype=np.float32)
    length_t = frame.shape[0]
    starts, ends = threshold_runs(frame, np.asarray(thresholds, dtype=np.float64))
    keep = (ends - starts) >= MIN_RUN
    s, e = starts[keep], ends[keep]
    outer_s, outer_e = _outer_bounds(s, e, length_t)
    out = np.zeros((len(s), 4))
    for i, (a, b, lo, hi) in enumerate(zip(s, e, outer_s, outer_e)):
        inner = frame[a : b + 1].mean()  # the public extra snippet at b
        outer_idx = np.r_[lo:a, b + 1 : hi]
        outer = frame[outer_idx].mean() if len(outer_idx) else np.float32(0.0)
        out[i] = (a, b + 1, inner - outer, inner)
    return out


def fuse_proposals(proposals: np.ndarray, temperature: float, overlap: float = FUSION_OVERLAP) -> np.ndarray:
    """(M, 3) fused [start, end, score] from (N, 4) [start, end, score, inner] proposals,
    best first (see the module docstring)."""
    if not len(proposals):
        return np.zeros((0, 3))
    s, e, score, inner = proposals.T
    area = e - s + 1
    order = np.argsort(score)  # numpy's default sort, as the public code (ties keep its order)
    fused = []
    while len(order):
        best, rest = order[-1], order[:-1]
        inter = np.maximum(0.0, np.minimum(e[best], e[rest]) - np.maximum(s[best], s[rest]) + 1)
        merged = inter / area[rest] > overlap
        group = np.concatenate([[best], rest[merged]])
        logits = inner[group] / temperature
        # the public arithmetic (sequential sums of unshifted weights: fused bounds are later
        # truncated, so rounding matters); shifted only where exp would overflow
        shift = logits.max() if logits.max() > 700 else 0.0
        total_s = total_e = total_score = norm = 0.0
        for j, logit in zip(group, logits):
            w = math.exp(logit - shift)
            total_s += s[j] * w
            total_e += e[j] * w
            total_score += score[j] * w
            norm += math.copysign(1.0, inner[j]) * w if inner[j] != 0 else 0.0
        fused.append([total_s / norm, total_e / norm, total_score / norm])
        order = rest[~merged]
    out = np.asarray(fused)
    return out[np.argsort(-out[:, 2], kind="stable")]


def contrast_rows(segments: np.ndarray, length_t: int) -> np.ndarray:
    """(M, T) constraint rows of fused [start, end, ...] segments: +1 on the truncated
    [start, end), -1 on its outer windows (``compute_score_matrix``)."""
    start = np.trunc(segments[:, 0]).astype(np.int64)
    end = np.trunc(segments[:, 1]).astype(np.int64)
    outer_s, outer_e = _outer_bounds(start, end, length_t)
    rows = np.zeros((len(segments), length_t))
    for i, (a, b, lo, hi) in enumerate(zip(start, end, outer_s, outer_e)):
        rows[i, a:b] = 1.0
        rows[i, lo:a] = -1.0
        rows[i, b:hi] = -1.0
    return rows


def solve_snippet_labels(segments: np.ndarray, length_t: int) -> np.ndarray | None:
    """(T,) values in [0, 1] of least sum with inner sum - outer sum = score for every fused
    [start, end, score] segment; None when no such values exist."""
    import pulp

    rows = contrast_rows(segments, length_t)
    support = np.flatnonzero(np.abs(rows).sum(axis=0))  # other snippets: 0 at the optimum
    problem = pulp.LpProblem("zhou2023_pseudo_labels", pulp.LpMinimize)
    x = {int(t): problem.add_variable(f"x{t}", 0.0, 1.0) for t in support}
    problem += pulp.lpSum(x.values())
    for i, row in enumerate(rows):
        nz = np.flatnonzero(row)
        problem += pulp.lpSum(float(row[t]) * x[int(t)] for t in nz) == float(segments[i, 2])
    with warnings.catch_warnings():  # PuLP 3 announces CBC's move to an extra; it ships with 3.x
        warnings.simplefilter("ignore", DeprecationWarning)
        status = problem.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[status] != "Optimal":
        return None
    out = np.zeros(length_t)
    for t, var in x.items():
        out[t] = min(1.0, max(0.0, float(var.value() or 0.0)))
    return out


def video_pseudo_labels(
    video_scores: np.ndarray,
    frame: np.ndarray,
    class_threshold: float,
    thresholds: Sequence[float],
    temperature: float,
) -> tuple[np.ndarray, int]:
    """(T, C+1) pseudo-labels of one video from its snapshot's video scores (C+1,) and
    ``frame`` = class probability x attention (T, C+1); and how many classes had no
    solution (their column stays 0; the public code would write NaN)."""
    labels = np.zeros_like(frame, dtype=np.float64)
    failed = 0
    for c in np.flatnonzero(video_scores >= class_threshold):
        fused = fuse_proposals(class_proposals(frame[:, c], thresholds), temperature)
        if not len(fused):
            continue
        solved = solve_snippet_labels(fused, frame.shape[0])
        if solved is None:
            failed += 1
        else:
            labels[:, c] = solved
    return labels, failed


def zhou_class_scores(output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
    """(C,) the test-time video scores (``0.6 fg_o + 0.4 fg_m``, background dropped)."""
    return np.asarray(output["video_scores"])[0][: output["cas"].shape[1] - 1]


def zhou_kept_classes(class_scores: np.ndarray, config: Any) -> np.ndarray:
    """Classes whose video score is at least ``class_threshold``: no fallback to the best one."""
    return np.flatnonzero(class_scores >= config.test.class_threshold)


def zhou_video_proposals(output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray) -> Proposals:
    """Test time (``ss_eval`` + ``getActLoc``): fused proposals of each class in ``classes``
    on the attention-weighted class probability (no suppression after: fusion replaces it)."""
    frame = softmax(output["cas"], axis=-1) * output["attention"][:, None]
    parts = []
    for c in np.asarray(classes, dtype=np.int64):
        fused = fuse_proposals(class_proposals(frame[:, c], config.own.cas_thresholds), config.own.fusion_temperature)
        parts.append((fused[:, 0], fused[:, 1], fused[:, 2], np.full(len(fused), c), np.full(len(fused), BASE)))
    return proposals_from_parts(parts)
