"""The localization head's proposals, for any base method (paper §3.4: at inference the head
is what gives the segments).

``loc_scores`` (T, C) are the head's per-snippet class probabilities and ``loc_offsets``
(T, 2) its distances in snippets from each snippet's centre to its action's start and end
(:mod:`wtal_training.mllm4wtal.loc_head`).  Proposals are made for the classes the base
method keeps for the video and ranked with the base method's video-level class scores;
:func:`wtal_training.postprocess.video_detections` adds them to the base method's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .proposals import HEAD, Proposals, outer_inner_scores, proposals_from_parts, threshold_runs


def head_proposals(
    loc_scores: np.ndarray,
    loc_offsets: np.ndarray,
    chosen: np.ndarray,
    test: Any,
    class_scores: np.ndarray | None = None,
) -> Proposals:
    """The head's proposals for the ``chosen`` classes, in the head's snippet steps (``test``:
    the config's ``test`` section).

    ``loc_decode: runs`` (the default): :func:`head_run_parts`.  ``regression``: ranked as
    detection heads rank (ActionFormer): a snippet's proposal for class c scores
    ``loc_scores[t, c] * class_scores[c]`` (the head's probability times the base method's
    video-level score of c, so a class the video barely shows cannot outrank one it clearly
    shows), candidates below ``loc_score_threshold`` (a low floor, 0.001) are dropped, the
    best ``max_proposals_per_class`` per class kept; the suppression comes after."""
    return proposals_from_parts(head_proposal_parts(loc_scores, loc_offsets, chosen, test, class_scores))


def head_proposal_parts(
    loc_scores: np.ndarray,
    loc_offsets: np.ndarray,
    chosen: np.ndarray,
    test: Any,
    class_scores: np.ndarray | None = None,
) -> list[tuple[np.ndarray, ...]]:
    """:func:`head_proposals` as (start, end, score, label, source) parts, one per class."""
    if str(test.loc_decode) == "runs":
        return head_run_parts(loc_scores, chosen, test, class_scores)
    parts = []
    length_t = loc_scores.shape[0]
    centre = np.arange(length_t) + 0.5
    for c in chosen:
        s = loc_scores[:, c] * (float(class_scores[c]) if class_scores is not None else 1.0)
        keep = np.flatnonzero(s >= test.loc_score_threshold)
        if len(keep) > test.max_proposals_per_class:
            keep = keep[np.argsort(-s[keep], kind="stable")[: test.max_proposals_per_class]]
        st = np.clip(centre[keep] - loc_offsets[keep, 0], 0, length_t)
        en = np.clip(centre[keep] + loc_offsets[keep, 1], 0, length_t)
        ok = en > st
        n_ok = int(ok.sum())
        parts.append((st[ok], en[ok], s[keep][ok].astype(np.float64), np.full(n_ok, c), np.full(n_ok, HEAD)))
    return parts


def head_run_parts(
    loc_scores: np.ndarray, chosen: np.ndarray, test: Any, class_scores: np.ndarray | None = None
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
    thresholds = np.linspace(0.1, 0.9, test.num_thresholds)
    for c in chosen:
        signal = loc_scores[:, c].astype(np.float64)
        starts, ends = threshold_runs(signal, thresholds)
        if not len(starts):
            continue
        score = outer_inner_scores(signal[:, None], starts, ends, test.outer_ratio)[:, 0]
        score = score + test.gamma_oic * (float(class_scores[c]) if class_scores is not None else 1.0)
        n = len(starts)
        parts.append((starts.astype(np.float64), ends.astype(np.float64), score, np.full(n, c), np.full(n, HEAD)))
    return parts
