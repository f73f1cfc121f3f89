"""UM's own test-time post-processing (Pilhyeon/WTAL-Uncertainty-Modeling ``test.py``), the
:meth:`~.um.UM.video_class_scores`, :meth:`~.um.UM.video_proposals` and :meth:`~.um.UM.suppress` hooks.

Per video (the network saw ``n`` snippets, uniformly resampled from ``video_length``):
class scores = softmax of the mean of the top ``n // r_act`` raw CAS values; kept classes
score >= ``class_threshold`` (else the best one).  The attention-weighted class
probabilities ``a * softmax(cas)`` are min-max normalised per class over time, and both
they and the attention are upsampled ``upsample_scale`` times by linear interpolation
(extrapolating past the last snippet, as ``scipy.interpolate.interp1d``).  Two threshold
families give runs: the normalised CAS at ``cas_thresholds`` (scored on the CAS with
sub-threshold values zeroed) and the attention (= normalised feature magnitude) at
``magnitude_thresholds`` (scored on the whole CAS); runs of fewer than 2 upsampled steps are
dropped; score = outer-inner contrast + ``gamma_oic`` x class score.  Hard NMS per class
at IoU ``nms_iou``.  Segments come back in snippets of the original video.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..proposals import BASE, Proposals, outer_inner_scores, proposals_from_parts, softmax

MIN_RUN = 2  # upsampled steps; get_proposal_oic skips shorter runs


def upsample(values: np.ndarray, scale: int) -> np.ndarray:
    """(n, ...) -> (n * scale, ...) by linear interpolation at ``i / scale``, extrapolating
    the last segment (``interp1d(kind="linear", fill_value="extrapolate")``)."""
    n = values.shape[0]
    if n == 1:
        return np.repeat(values, scale, axis=0)
    xs = np.arange(n * scale) / scale
    left = np.clip(np.floor(xs).astype(np.int64), 0, n - 2)
    frac = (xs - left).reshape(-1, *([1] * (values.ndim - 1)))
    return values[left] + frac * (values[left + 1] - values[left])


def minmax_per_class(x: np.ndarray) -> np.ndarray:
    """UM's ``utils.minmax_norm`` over time (axis 0): ReLU'd max and min, zero range -> 1, clipped."""
    high, low = np.maximum(x.max(axis=0), 0), np.maximum(x.min(axis=0), 0)
    delta = high - low
    delta[delta <= 0] = 1
    return np.clip((x - low) / delta, 0, 1)


def runs(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of True in a 1-D boolean array."""
    change = np.diff(np.pad(on.astype(np.int8), 1))
    return np.flatnonzero(change == 1), np.flatnonzero(change == -1)


def um_class_scores(output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
    """(C,) softmax of the mean of the top ``n // r_act`` raw CAS values per class."""
    logits = output["class_logits"]
    k = max(1, int(output["attention"].shape[0] // config.own.r_act))
    top = -np.sort(-logits, axis=0)[:k]
    return softmax(top.mean(axis=0))


def um_video_proposals(
    output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray, class_scores: np.ndarray
) -> Proposals:
    """UM's proposals of one video for ``classes`` (module docstring)."""
    logits, attention = output["class_logits"], output["attention"]
    n = attention.shape[0]
    unit = float(output.get("video_length", n)) / n  # original snippets per network step
    chosen = np.asarray(classes, dtype=np.int64)
    parts: list[tuple[np.ndarray, ...]] = []
    scale = int(config.own.upsample_scale)
    cas = upsample(minmax_per_class(softmax(logits, axis=-1) * attention[:, None])[:, chosen], scale)
    att = upsample(attention, scale)
    step = unit / scale
    for col, c in enumerate(chosen):
        families = [(cas[:, col] >= thr) & (cas[:, col] > 0) for thr in config.own.cas_thresholds]
        wtcams = [np.where(cas[:, col] < thr, 0.0, cas[:, col]) for thr in config.own.cas_thresholds]
        families += [(att >= thr) & (att > 0) for thr in config.own.magnitude_thresholds]
        wtcams += [cas[:, col]] * len(config.own.magnitude_thresholds)
        for on, wtcam in zip(families, wtcams):
            st, en = runs(on)
            keep = (en - st) >= MIN_RUN
            st, en = st[keep], en[keep]
            if not len(st):
                continue
            contrast = outer_inner_scores(wtcam[:, None], st, en, config.test.outer_ratio)[:, 0]
            contrast = contrast + config.test.gamma_oic * class_scores[c]
            parts.append((st * step, en * step, contrast, np.full(len(st), c), np.full(len(st), BASE)))
    return proposals_from_parts(parts)


def hard_nms(start: np.ndarray, end: np.ndarray, score: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: keep the best, drop the others overlapping it at IoU >= threshold; the
    returned scores are NaN for dropped proposals (``utils.nms``, without its +1 in lengths)."""
    out = np.full(len(score), np.nan)
    order = np.argsort(-score, kind="stable")
    while len(order):
        best, rest = order[0], order[1:]
        out[best] = score[best]
        inter = np.clip(np.minimum(end[best], end[rest]) - np.maximum(start[best], start[rest]), 0, None)
        union = (end[best] - start[best]) + (end[rest] - start[rest]) - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou < iou_threshold]
    return out
