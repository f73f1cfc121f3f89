"""The localization head's pseudo-labels: the base method's own proposals on whole training
videos, selected per video (paper §3.3 follows PivoTAL, whose pseudo-instances are its base
model's proposals for the video's labelled classes).

Why not a fixed threshold on the attention: at a fixed value (the earlier rule, "fused
attention >= 0.5") the positive share follows the base's calibration, which drifts during
training and between seeds; on generated THUMOS14-shaped data it ranged from 0.001 to 0.95
against a true 0.28, and every run of positives became one over-long instance.  Here:

1. the base method (eval mode, no dropout, no gradient) runs on every training video at
   its native length, exactly as at test time (:func:`wtal_training.inference.infer`);
2. its own post-processing hooks give proposals for each *labelled* class of the video
   (``video_proposals`` with the labels as the classes) and its suppression decays overlaps
   (``suppress``: soft-NMS for CO2-Net/DELU, hard NMS for UM);
3. per (video, class), scores are min-max normalised over that video's proposals of the
   class, and proposals are taken best first while their normalised score is >=
   ``min_relative_score``, they overlap no taken one by more than ``max_overlap`` (IoU) and
   the union stays within ``max_share`` of the video; every labelled class gets at least
   one instance, so no video has an empty target.

The rule is relative to each video, so a base whose scores drift does not move the share;
its two constants were chosen on training videos of the generated benchmark
(docs/results.md, "Pseudo-labels"), never on a test split.

Targets are per snippet of the *native* video: a snippet whose centre lies in a
pseudo-instance of class c is positive for c, with offsets (centre - start, end - centre) in
native snippets; where instances of two classes overlap, the shorter one gives the offsets
(ActionFormer's rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class PseudoLabelRule:
    """How proposals become pseudo-instances (see the module docstring)."""

    min_relative_score: float = 0.5
    max_overlap: float = 0.5
    max_share: float = 0.9


@dataclass
class PseudoInstances:
    """One video's pseudo-instances in native snippets (end exclusive)."""

    start: np.ndarray  # (K,) float
    end: np.ndarray
    label: np.ndarray  # (K,) int class index


def _iou_with(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(end, ends) - np.maximum(start, starts), 0, None)
    union = (end - start) + (ends - starts) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def select_instances(
    start: np.ndarray, end: np.ndarray, score: np.ndarray, length: int, rule: PseudoLabelRule
) -> np.ndarray:
    """Indices of the proposals of one (video, class) taken as pseudo-instances.

    ``score``: the suppressed scores (non-finite = removed by the suppression).  Best first:
    a proposal is taken while its min-max normalised score is >= ``rule.min_relative_score``
    (the best always qualifies), its IoU with every taken one is <= ``rule.max_overlap``, and
    the covered share of the ``length``-snippet video stays <= ``rule.max_share``.  When no
    proposal fits under the share (every one covers nearly the whole video, as ActivityNet's
    actions can), the best one is taken alone: the base then sees one action everywhere.
    """
    alive = np.flatnonzero(np.isfinite(score) & (end > start))
    if not len(alive):
        return alive
    s = score[alive]
    lo, hi = float(s.min()), float(s.max())
    normalised = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
    order = alive[np.argsort(-s, kind="stable")]
    norm_of = dict(zip(alive.tolist(), normalised.tolist()))
    covered = np.zeros(max(length, 1), dtype=bool)
    taken: list[int] = []
    for i in order.tolist():
        if norm_of[i] < rule.min_relative_score:
            break
        if taken and (_iou_with(start[i], end[i], start[taken], end[taken]) > rule.max_overlap).any():
            continue
        trial = covered.copy()
        trial[max(int(np.floor(start[i])), 0) : min(int(np.ceil(end[i])), length)] = True
        if trial.mean() > rule.max_share:
            continue
        covered = trial
        taken.append(i)
    if not taken:
        taken = [int(order[0])]
    return np.asarray(taken, dtype=np.int64)


def pseudo_instances(
    method: Any,
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    labels: Mapping[str, np.ndarray],
    config: Any,
    rule: PseudoLabelRule,
) -> dict[str, PseudoInstances]:
    """Every video's pseudo-instances from the base method's eval-mode ``outputs``.

    ``method``: the registered base-method class (its ``video_proposals`` and ``suppress``
    hooks); ``labels``: per video, its class indices; ``config``: the run's TrainConfig (the
    post-processing settings).  The suppression runs once over every (video, class) group
    (the batched soft-NMS is fastest that way).
    """
    groups, keys = [], []
    for vid, out in outputs.items():
        classes = np.asarray(labels[vid], dtype=np.int64)
        if not len(classes):
            continue
        props = method.video_proposals(out, config, classes, method.video_class_scores(out, config))
        for c in classes.tolist():
            sel = props.label == c
            groups.append((props.start[sel], props.end[sel], props.score[sel]))
            keys.append((vid, c))
    decayed = method.suppress(groups, config)
    found: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {vid: [] for vid in outputs}
    for (vid, c), (st, en, _), sc in zip(keys, groups, decayed):
        length = int(outputs[vid].get("video_length", len(outputs[vid]["attention"])))
        keep = select_instances(st, en, np.asarray(sc, dtype=np.float64), length, rule)
        found[vid].append((np.clip(st[keep], 0, length), np.clip(en[keep], 0, length), np.full(len(keep), c)))
    empty = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    return {
        vid: PseudoInstances(*(np.concatenate([p[i] for p in parts] or [empty[i]]) for i in range(3)))
        for vid, parts in found.items()
    }


def instance_targets(
    instances: PseudoInstances, length: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-snippet targets of one video: classes (T, C) float32 in {0, 1}, offsets (T, 2)
    float32 in native snippets from each snippet's centre to its instance's start and end,
    and positive (T,) bool.  A snippet is inside an instance when its centre (t + 0.5) lies in
    [start, end]; the shortest instance containing it gives its offsets."""
    classes = np.zeros((length, num_classes), np.float32)
    offsets = np.zeros((length, 2), np.float32)
    best_len = np.full(length, np.inf)
    centre = np.arange(length) + 0.5
    for s, e, c in zip(instances.start, instances.end, instances.label):
        inside = (centre >= s) & (centre <= e)
        classes[inside, c] = 1.0
        shorter = inside & ((e - s) < best_len)
        offsets[shorter, 0] = centre[shorter] - s
        offsets[shorter, 1] = e - centre[shorter]
        best_len[shorter] = e - s
    return classes, offsets, classes.any(axis=1)


@dataclass
class PackedTargets:
    """Every training snippet's targets, rows aligned with ``DeviceFeatureSet.features``."""

    classes: torch.Tensor  # (N, C) float
    offsets: torch.Tensor  # (N, 2) float, native snippets
    positive: torch.Tensor  # (N,) bool


def pack_targets(
    instances: Mapping[str, PseudoInstances], video_ids: list[str], lengths: np.ndarray, num_classes: int, device
) -> PackedTargets:
    parts = [instance_targets(instances[v], int(n), num_classes) for v, n in zip(video_ids, lengths)]
    return PackedTargets(
        torch.from_numpy(np.concatenate([p[0] for p in parts])).to(device),
        torch.from_numpy(np.concatenate([p[1] for p in parts])).to(device),
        torch.from_numpy(np.concatenate([p[2] for p in parts])).to(device),
    )


def foreground_truth(entry: Mapping[str, Any], length: int, snippet_seconds: float, classes: list[str]) -> np.ndarray:
    """(T, C) bool: snippet centre inside an annotated segment of each class (diagnostics only:
    training never reads segment annotations)."""
    centres = (np.arange(length) + 0.5) * snippet_seconds
    out = np.zeros((length, len(classes)), dtype=bool)
    index = {c: i for i, c in enumerate(classes)}
    for ann in entry.get("annotations", []):
        if ann["label"] not in index:
            continue
        start, end = (float(x) for x in ann["segment"])
        out[:, index[ann["label"]]] |= (centres >= start) & (centres <= end)
    return out


def pseudo_label_quality(
    targets: PackedTargets, gt: Mapping[str, Any], video_ids: list[str], lengths: np.ndarray
) -> dict[str, float]:
    """Positive share, and class-aware snippet precision and recall of the pseudo-labels against
    the annotated segments of the training videos that have any (a diagnostic written to
    metrics.csv; NaN where no training video is annotated)."""
    predicted = targets.classes.detach().cpu().numpy() > 0.5
    hits = marked = truth_total = 0
    offset = 0
    for vid, n in zip(video_ids, lengths.tolist()):
        entry = gt["database"][vid]
        if entry.get("annotations"):
            truth = foreground_truth(entry, n, float(gt["snippet_seconds"]), list(gt["classes"]))
            mine = predicted[offset : offset + n]
            hits += int((mine & truth).sum())
            marked += int(mine.sum())
            truth_total += int(truth.sum())
        offset += n
    share = float(targets.positive.float().mean())
    precision = hits / marked if marked else float("nan")
    recall = hits / truth_total if truth_total else float("nan")
    return {"loc_pseudo_share": share, "loc_pseudo_precision": precision, "loc_pseudo_recall": recall}
