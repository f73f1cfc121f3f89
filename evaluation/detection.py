"""ActivityNet temporal action detection mAP, vectorised with numpy.

This reproduces the official evaluator (activitynet/ActivityNet, ``Evaluation/
eval_detection.py``, ``compute_average_precision_detection`` and
``interpolated_prec_rec``) without its Python 2, network ("blocked videos") and
NumPy < 1.24 requirements, and without its per-prediction Python loop.

Protocol, all times in seconds:

* Ground truth: the segments of the videos whose ``subset`` equals ``subset`` exactly
  (``None``: every video).  The classes evaluated are the labels of those segments;
  mAP is the mean AP over them.
* Per class, predictions are sorted by descending score; each in turn is matched to
  the not-yet-matched ground-truth segment of the same class and video with the
  highest tIoU, if that tIoU is >= the threshold (a true positive), else it is a
  false positive.  Matching is done independently per threshold.
* AP is the VOC-2011 interpolated area under precision/recall (precision made
  monotone from the right, summed over the recall steps).

Rules for the cases the protocol leaves implicit (each is tested):

* Predictions for a video that has no ground truth of that class in the subset
  (another class, another subset, or a video absent from the ground truth) are false
  positives, exactly as in the official code, which never filters predictions by
  subset.  Their count is reported (``num_predictions_outside_subset`` for videos not
  in the subset at all).
* A label that has ground truth in the file but none in this subset is skipped (it
  cannot change the mean; the official code crashes with a KeyError there).  A label
  that the file does not know at all (neither in ``classes`` nor in any annotation)
  is almost always a class-name mismatch, so by default it raises
  :class:`EvaluationError` listing the labels; ``unknown_labels="ignore"`` drops them
  and reports how many.
* Duplicate predictions: the second copy finds its ground truth taken and is a false
  positive.
* Ties.  The official code sorts with ``argsort()[::-1]`` (scores, and tIoUs against a
  video's ground truth), whose order on ties depends on NumPy's sort algorithm and the
  CPU (the SIMD sorts of NumPy >= 1.25 are not stable).  Here ties are deterministic
  and follow what that expression gives with a stable sort (which is what NumPy's
  insertion sort gives the official code for up to 16 elements): among equal scores,
  the prediction later in the results file comes first; among equal tIoUs, the ground
  truth later in the video's annotation list is taken first.
* Zero-length segments are valid.  A zero-length prediction against a segment of
  positive length has tIoU 0 (never a match).  When both are zero-length the union is
  0; the official code divides 0/0 and its NaN then counts as a match at every
  threshold (wherever the two instants are).  Here that tIoU is defined as 0: a
  documented, deliberate deviation.  A segment with end < start, or a non-finite
  score or time, is an error.
* Ambiguous filter (off by default): drop every prediction that overlaps (positive
  intersection, in seconds) an ambiguous segment of its video, before matching,
  as W-TALC/CO2-Net do with THUMOS14's ``Ambiguous_test.txt``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .thresholds import (
    THUMOS14_TIOU,
    EvaluationError,
    average_key,
    check_thresholds,
    default_averages,
    threshold_key,
)

LOGGER = logging.getLogger(__name__)

# Pairs (prediction, ground truth) built per chunk, to bound memory on dense inputs.
_PAIR_CHUNK = 2_000_000


@dataclass
class GroundTruthArrays:
    """The subset's ground truth as flat arrays (one row per segment)."""

    classes: list[str]  # evaluated classes (those with ground truth in the subset)
    vocabulary: set[str]  # every label the file knows, any subset
    videos: list[str]  # videos in the subset (with or without segments)
    video: np.ndarray  # int64 index into ``videos``
    label: np.ndarray  # int64 index into ``classes``
    start: np.ndarray  # float64 seconds
    end: np.ndarray  # float64 seconds


@dataclass
class PredictionArrays:
    video_id: list[str]  # per prediction
    label: list[str]
    score: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _segment(value: Any, where: str) -> tuple[float, float]:
    try:
        start, end = float(value[0]), float(value[1])
        if len(value) != 2:
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise EvaluationError(f"{where}: segment {value!r} is not [start, end] in seconds") from exc
    if not (math.isfinite(start) and math.isfinite(end)):
        raise EvaluationError(f"{where}: segment {value!r} is not finite")
    if end < start:
        raise EvaluationError(f"{where}: segment {value!r} ends before it starts")
    return start, end


def read_ground_truth(
    ground_truth: Mapping[str, Any], subset: str | None, source: str = "ground truth"
) -> GroundTruthArrays:
    """Validate the ActivityNet ground-truth dict and flatten the subset's segments."""
    if not isinstance(ground_truth, Mapping) or not isinstance(ground_truth.get("database"), Mapping):
        raise EvaluationError(f"{source}: missing top-level key 'database' (the ActivityNet ground-truth format)")
    declared = ground_truth.get("classes")
    if declared is not None and not (isinstance(declared, list) and all(isinstance(c, str) for c in declared)):
        raise EvaluationError(f"{source}: 'classes' must be a list of class names")
    vocabulary: set[str] = set(declared or [])
    order: dict[str, int] = {}
    videos: list[str] = []
    video, label, start, end = [], [], [], []
    subsets_seen: set[str] = set()
    for video_id, entry in ground_truth["database"].items():
        where = f"{source}: video '{video_id}'"
        if not isinstance(entry, Mapping):
            raise EvaluationError(f"{where}: entry is not an object")
        if subset is not None and "subset" not in entry:
            raise EvaluationError(f"{where}: missing key 'subset'")
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            raise EvaluationError(f"{where}: 'annotations' is not a list")
        in_subset = subset is None or entry["subset"] == subset
        if subset is not None:
            subsets_seen.add(str(entry["subset"]))
        if in_subset:
            videos.append(video_id)
        for i, ann in enumerate(annotations):
            if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
                raise EvaluationError(f"{where}: annotation {i} needs 'label' and 'segment'")
            name = ann["label"]
            vocabulary.add(name)
            if not in_subset:
                continue
            seg = _segment(ann["segment"], f"{where}: annotation {i}")
            order.setdefault(name, len(order))
            video.append(len(videos) - 1)
            label.append(name)
            start.append(seg[0])
            end.append(seg[1])
    if subset is not None and not videos:
        raise EvaluationError(f"{source}: no video has subset {subset!r}; subsets present: {sorted(subsets_seen)}")
    if not label:
        raise EvaluationError(f"{source}: no ground-truth segments in subset {subset!r}")
    # Canonical files list their classes: keep that order; others: first appearance.
    classes = [c for c in (declared or []) if c in order] + [c for c in order if c not in set(declared or [])]
    index = {c: i for i, c in enumerate(classes)}
    return GroundTruthArrays(
        classes=classes,
        vocabulary=vocabulary,
        videos=videos,
        video=np.asarray(video, dtype=np.int64),
        label=np.asarray([index[n] for n in label], dtype=np.int64),
        start=np.asarray(start, dtype=np.float64),
        end=np.asarray(end, dtype=np.float64),
    )


def read_predictions(predictions: Mapping[str, Any], source: str = "predictions") -> PredictionArrays:
    """Validate the ActivityNet results dict and flatten it, keeping file order."""
    if not isinstance(predictions, Mapping) or not isinstance(predictions.get("results"), Mapping):
        raise EvaluationError(f"{source}: missing top-level key 'results' (the ActivityNet results format)")
    video_ids: list[str] = []
    labels: list[str] = []
    scores: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    for video_id, items in predictions["results"].items():
        if not isinstance(items, list):
            raise EvaluationError(f"{source}: video '{video_id}': results must be a list")
        for i, item in enumerate(items):
            try:
                lab, score, seg = item["label"], float(item["score"]), item["segment"]
                s, e = float(seg[0]), float(seg[1])
                if len(seg) != 2 or not isinstance(lab, str):
                    raise ValueError
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                raise EvaluationError(
                    f"{source}: video '{video_id}': prediction {i} needs a string 'label', a number 'score' "
                    f"and 'segment' [start, end] in seconds; got {item!r}"
                ) from exc
            video_ids.append(video_id)
            labels.append(lab)
            scores.append(score)
            starts.append(s)
            ends.append(e)
    out = PredictionArrays(
        video_id=video_ids,
        label=labels,
        score=np.asarray(scores, dtype=np.float64),
        start=np.asarray(starts, dtype=np.float64),
        end=np.asarray(ends, dtype=np.float64),
    )
    bad = ~(np.isfinite(out.score) & np.isfinite(out.start) & np.isfinite(out.end) & (out.end >= out.start))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise EvaluationError(
            f"{source}: video '{video_ids[j]}': prediction with score {scores[j]!r} and segment "
            f"[{starts[j]!r}, {ends[j]!r}] is invalid (non-finite, or end before start); "
            f"{int(bad.sum())} such prediction(s)"
        )
    return out


def _ambiguous_mask(pred: PredictionArrays, ambiguous: Mapping[str, Any], source: str) -> np.ndarray:
    """True for predictions overlapping (intersection > 0 s) an ambiguous segment."""
    drop = np.zeros(len(pred.score), dtype=bool)
    if not isinstance(ambiguous, Mapping):
        raise EvaluationError(f"{source}: 'ambiguous' must map video id to [[start, end], ...]")
    rows_by_video: dict[str, list[int]] = {}
    for j, vid in enumerate(pred.video_id):
        if vid in ambiguous:
            rows_by_video.setdefault(vid, []).append(j)
    for vid, rows in rows_by_video.items():
        segs = ambiguous[vid]
        if not isinstance(segs, list):
            raise EvaluationError(f"{source}: ambiguous segments of video '{vid}' are not a list")
        if not segs:
            continue
        amb = np.asarray([_segment(s, f"{source}: ambiguous segment of video '{vid}'") for s in segs])
        r = np.asarray(rows)
        inter = np.minimum(pred.end[r, None], amb[None, :, 1]) - np.maximum(pred.start[r, None], amb[None, :, 0])
        drop[r] = (inter > 0).any(axis=1)
    return drop


def _segment_tiou(ps: np.ndarray, pe: np.ndarray, gs: np.ndarray, ge: np.ndarray) -> np.ndarray:
    """tIoU as the official ``segment_iou`` computes it; 0 where the union is 0."""
    inter = (np.minimum(pe, ge) - np.maximum(ps, gs)).clip(0)
    union = (ge - gs) + (pe - ps) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        tiou = inter / union
    return np.where(union > 0, tiou, 0.0)


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC-2011 interpolated AP for each row of (T, n) precision/recall curves."""
    rows = precision.shape[0]
    mprec = np.concatenate([np.zeros((rows, 1)), precision, np.zeros((rows, 1))], axis=1)
    mrec = np.concatenate([np.zeros((rows, 1)), recall, np.ones((rows, 1))], axis=1)
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    return ((mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]).sum(axis=1)


def average_precision(
    gt_video: np.ndarray,
    gt_label: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    pred_video: np.ndarray,
    pred_label: np.ndarray,
    pred_score: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
    thresholds: Sequence[float],
    num_classes: int,
) -> np.ndarray:
    """AP, shape (len(thresholds), num_classes), from flat integer-coded arrays.

    ``pred_video`` is -1 for a video without ground truth in the subset; every
    ``pred_label`` must be in [0, num_classes) and every class must have ground truth.
    Array order is file order (it breaks ties, see the module docstring).

    Vectorisation: matches can only interact within one (class, video) group, so the
    k-th prediction of every group is matched in the same numpy step; a step is a
    segmented "first free ground truth in official order" over candidate pairs.
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    num_t, num_p = len(thr), len(pred_score)
    ap = np.zeros((num_t, num_classes))
    npos = np.bincount(gt_label, minlength=num_classes).astype(np.float64)
    if num_p == 0:
        return ap
    num_v = int(max(gt_video.max(initial=-1), pred_video.max(initial=-1))) + 1

    # Processing order: class, then score descending, ties: later in the file first.
    order = np.lexsort((-np.arange(num_p), -pred_score, pred_label))
    p_label, p_video = pred_label[order], pred_video[order]
    p_start, p_end = pred_start[order], pred_end[order]

    # Ground truth grouped by (class, video); the stable sort keeps annotation order.
    g_key = gt_label * num_v + gt_video
    g_order = np.argsort(g_key, kind="stable")
    g_key, g_start, g_end = g_key[g_order], gt_start[g_order], gt_end[g_order]
    groups, g_first, g_count = np.unique(g_key, return_index=True, return_counts=True)

    p_key = p_label * num_v + p_video
    p_group = np.searchsorted(groups, p_key)
    p_group_c = np.minimum(p_group, len(groups) - 1)
    has_gt = (p_video >= 0) & (groups[p_group_c] == p_key)
    candidates = np.flatnonzero(has_gt)

    # Candidate (prediction, ground truth) pairs that can ever match: tIoU >= min thr.
    pair_pred_parts, pair_gt_parts, pair_tiou_parts = [], [], []
    counts = g_count[p_group_c[candidates]]
    bounds = np.searchsorted(np.cumsum(counts), np.arange(0, counts.sum() + _PAIR_CHUNK, _PAIR_CHUNK), side="right")
    bounds = np.unique(np.concatenate([[0], np.minimum(bounds, len(candidates)), [len(candidates)]]))
    for a, b in zip(bounds[:-1], bounds[1:]):
        cand, n = candidates[a:b], counts[a:b]
        first = g_first[p_group_c[cand]]
        pair_pred = np.repeat(cand, n)
        offsets = np.cumsum(n) - n
        pair_gt = np.arange(n.sum()) - np.repeat(offsets - first, n)
        tiou = _segment_tiou(p_start[pair_pred], p_end[pair_pred], g_start[pair_gt], g_end[pair_gt])
        keep = tiou >= thr.min()
        pair_pred_parts.append(pair_pred[keep])
        pair_gt_parts.append(pair_gt[keep])
        pair_tiou_parts.append(tiou[keep])
    pair_pred = np.concatenate(pair_pred_parts) if pair_pred_parts else np.zeros(0, np.int64)
    pair_gt = np.concatenate(pair_gt_parts) if pair_gt_parts else np.zeros(0, np.int64)
    pair_tiou = np.concatenate(pair_tiou_parts) if pair_tiou_parts else np.zeros(0)

    tp = np.zeros((num_t, num_p), dtype=bool)
    if len(pair_pred):
        # Step of each prediction = its rank within its group, among those with pairs.
        live = np.unique(pair_pred)
        live_group = p_group[live]
        by_group = np.argsort(live_group, kind="stable")
        sorted_groups = live_group[by_group]
        group_start = np.searchsorted(sorted_groups, sorted_groups, side="left")
        step = np.empty(num_p, dtype=np.int64)
        step[live[by_group]] = np.arange(len(live)) - group_start
        pair_step = step[pair_pred]
        # Official visiting order inside a prediction: tIoU descending, later GT first.
        pair_order = np.lexsort((-pair_gt, -pair_tiou, pair_pred, pair_step))
        pair_pred, pair_gt, pair_tiou = pair_pred[pair_order], pair_gt[pair_order], pair_tiou[pair_order]
        pair_step = pair_step[pair_order]
        step_bounds = np.searchsorted(pair_step, np.arange(pair_step[-1] + 2))
        locked = np.zeros((num_t, len(g_key)), dtype=bool)
        thr_col = thr[:, None]
        for a, b in zip(step_bounds[:-1], step_bounds[1:]):
            pp, pg, pt = pair_pred[a:b], pair_gt[a:b], pair_tiou[a:b]
            n = b - a
            seg_start = np.flatnonzero(np.concatenate([[True], pp[1:] != pp[:-1]]))
            free = (pt >= thr_col) & ~locked[:, pg]
            first_free = np.minimum.reduceat(np.where(free, np.arange(n), n), seg_start, axis=1)
            t_hit, s_hit = np.nonzero(first_free < n)
            j = first_free[t_hit, s_hit]
            locked[t_hit, pg[j]] = True
            tp[t_hit, pp[j]] = True

    class_bounds = np.searchsorted(p_label, np.arange(num_classes + 1))
    for c in range(num_classes):
        a, b = class_bounds[c], class_bounds[c + 1]
        if a == b:
            continue
        tp_c = tp[:, a:b]
        tp_cum = np.cumsum(tp_c, axis=1, dtype=np.float64)
        fp_cum = np.cumsum(~tp_c, axis=1, dtype=np.float64)
        ap[:, c] = _interpolated_ap(tp_cum / (tp_cum + fp_cum), tp_cum / npos[c])
    return ap


def evaluate_detection(
    ground_truth: Mapping[str, Any],
    predictions: Mapping[str, Any],
    subset: str | None = "test",
    tiou_thresholds: Sequence[float] = THUMOS14_TIOU,
    ambiguous: Mapping[str, Any] | None = None,
    filter_ambiguous: bool = False,
    averages: Sequence[tuple[float, float]] | None = None,
    unknown_labels: str = "error",
    gt_source: str = "ground truth",
    pred_source: str = "predictions",
) -> dict[str, Any]:
    """Official ActivityNet detection mAP of ``predictions`` against ``ground_truth``.

    ``ground_truth`` is the ActivityNet ground-truth dict (``database``; the canonical
    ``ground_truth.json`` adds ``classes`` and ``ambiguous``); ``predictions`` the
    results dict (``results``: video id -> [{label, score, segment}]).  ``subset`` is
    matched exactly against each video's ``subset`` (``None``: all videos).
    ``ambiguous`` (video id -> [[start, end], ...] seconds) defaults to the ground
    truth's ``ambiguous`` and is used only when ``filter_ambiguous``.  ``averages``
    are (low, high) threshold ranges to average mAP over; by default a preset's when
    the thresholds are a preset's, else all thresholds.  ``unknown_labels``: "error"
    or "ignore" (see the module docstring).  All values returned are in [0, 1].
    """
    if unknown_labels not in ("error", "ignore"):
        raise EvaluationError(f"unknown_labels must be 'error' or 'ignore', not {unknown_labels!r}")
    thresholds = check_thresholds(tiou_thresholds)
    gt = read_ground_truth(ground_truth, subset, gt_source)
    pred = read_predictions(predictions, pred_source)
    num_input = len(pred.score)

    keep = np.ones(num_input, dtype=bool)
    dropped_ambiguous = 0
    if filter_ambiguous:
        source = "ambiguous" if ambiguous is not None else gt_source
        if ambiguous is None:
            ambiguous = ground_truth.get("ambiguous")
            if ambiguous is None:
                raise EvaluationError(
                    f"{gt_source}: filter_ambiguous needs an 'ambiguous' key or an ambiguous= mapping"
                )
        drop = _ambiguous_mask(pred, ambiguous, source)
        dropped_ambiguous = int(drop.sum())
        keep &= ~drop

    class_index = {c: i for i, c in enumerate(gt.classes)}
    label = np.asarray([class_index.get(lab, -1) for lab in pred.label], dtype=np.int64)
    unknown = sorted({lab for lab, c in zip(pred.label, label) if c < 0 and lab not in gt.vocabulary})
    unknown_mask = np.asarray([c < 0 and lab not in gt.vocabulary for lab, c in zip(pred.label, label)], dtype=bool)
    num_unknown = int(unknown_mask.sum()) if num_input else 0
    if unknown and unknown_labels == "error":
        raise EvaluationError(
            f"{pred_source}: {num_unknown} prediction(s) carry label(s) the ground truth does not know: "
            f"{unknown[:20]}{' ...' if len(unknown) > 20 else ''}; known classes: {sorted(gt.vocabulary)[:20]}"
            f"{' ...' if len(gt.vocabulary) > 20 else ''}"
        )
    if num_unknown:
        LOGGER.warning(
            "ignoring %d prediction(s) with labels unknown to the ground truth: %s", num_unknown, unknown[:20]
        )
    no_gt_class = (label < 0) & ~unknown_mask if num_input else np.zeros(0, bool)
    num_no_gt_class = int((no_gt_class & keep).sum())
    keep &= label >= 0

    video_index = {v: i for i, v in enumerate(gt.videos)}
    video = np.asarray([video_index.get(v, -1) for v in pred.video_id], dtype=np.int64)
    outside = int(((video < 0) & keep).sum())
    if outside:
        LOGGER.warning(
            "%d prediction(s) are for videos outside subset %r: counted as false positives (official rule)",
            outside,
            subset,
        )

    ap = average_precision(
        gt.video,
        gt.label,
        gt.start,
        gt.end,
        video[keep],
        label[keep],
        pred.score[keep],
        pred.start[keep],
        pred.end[keep],
        thresholds,
        len(gt.classes),
    )
    mean_ap = ap.mean(axis=1)
    averages = tuple(averages) if averages is not None else default_averages(thresholds)
    average_map = {}
    for low, high in averages:
        inside = [i for i, t in enumerate(thresholds) if low - 1e-9 <= t <= high + 1e-9]
        if not inside:
            raise EvaluationError(f"average range {low}:{high} holds none of the thresholds {list(thresholds)}")
        average_map[average_key(low, high)] = float(mean_ap[inside].mean())
    keys = [threshold_key(t) for t in thresholds]
    return {
        "protocol": "ActivityNet detection: greedy highest-tIoU matching, VOC-2011 interpolated AP, seconds",
        "subset": subset,
        "tiou_thresholds": list(thresholds),
        "mAP": {k: float(v) for k, v in zip(keys, mean_ap)},
        "average_mAP": average_map,
        "per_class": {c: {k: float(ap[i, c_i]) for i, k in enumerate(keys)} for c_i, c in enumerate(gt.classes)},
        "num_classes": len(gt.classes),
        "num_videos": len(gt.videos),
        "num_ground_truth": int(len(gt.label)),
        "num_predictions_input": num_input,
        "num_predictions": int(keep.sum()),
        "num_predictions_outside_subset": outside,
        "num_predictions_class_without_ground_truth": num_no_gt_class,
        "num_predictions_unknown_label": num_unknown,
        "filter_ambiguous": bool(filter_ambiguous),
        "num_predictions_dropped_ambiguous": dropped_ambiguous,
        "unknown_labels": unknown_labels,
    }
