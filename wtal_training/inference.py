"""Inference: the one test-time path from a model to scored detections.

:func:`infer` runs every video of a feature set through an inference model, at the length its
base method asks for, in padded chunks, and returns per-video numpy outputs; :func:`detect`
turns them into the method's detections in seconds (:mod:`.postprocess`); :func:`evaluate_model`
scores those on the test split with :mod:`evaluation`.  ``train``'s final evaluation,
``evaluate`` and ``predict`` all go through :func:`detect`, so a prediction on new videos is
exactly what the evaluated numbers measure.  The localization head's pseudo-labels run
:func:`infer` too, on whole training videos (:mod:`wtal_training.mllm4wtal.head_training`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .models.base import BaseOutput, base_method_of, inference_snippet_budget, snippet_bounded_videos
from .postprocess import predictions_from_outputs
from .sampler import DeviceFeatureSet


@torch.inference_mode()
def infer(
    model: nn.Module, data: DeviceFeatureSet, max_snippets: int | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Run the inference model on every video of ``data``; per-video numpy outputs.

    Videos are sorted by length and packed into zero-padded chunks of at most
    ``max_snippets`` (B x T_max) snippets; the models mask padding, so the numbers
    equal those of one-video-at-a-time inference.  The base method's
    ``inference_length`` hook says how many snippets it sees per video (snippet
    ``(i * length) // n`` as input i); a resampled video's entry carries its
    ``video_length`` so the post-processing can map back.  Each entry holds ``cas``,
    ``attention`` and the extras the model lists in ``test_outputs`` (the base method's,
    then its objective's: the localization head's ``loc_scores``/``loc_offsets``).
    """
    was_training = model.training
    model.eval()
    device = data.device
    if max_snippets is None:
        max_snippets = inference_snippet_budget(device)
    base = base_method_of(model)
    lengths_t = data.lengths
    seen_t = base.inference_length(lengths_t) if base is not None else lengths_t
    lengths, seen = lengths_t.cpu().numpy(), seen_t.cpu().numpy()
    keys = tuple(model.test_outputs)  # the base method's extras, then the objective's (the head's)
    order = np.argsort(-seen, kind="stable")
    results: dict[str, dict[str, np.ndarray]] = {}
    i = 0
    while i < len(order):
        t_max = int(seen[order[i]])
        count = (
            base.inference_videos_per_chunk(t_max, max_snippets)
            if base is not None
            else snippet_bounded_videos(t_max, max_snippets)
        )
        chunk = order[i : i + count]
        i += len(chunk)
        idx = torch.as_tensor(chunk, device=device)
        lens, n_seen = lengths_t[idx].unsqueeze(1), seen_t[idx].unsqueeze(1)
        steps = torch.arange(t_max, device=device).unsqueeze(0)
        mask = steps < n_seen
        picked = torch.minimum((steps * lens) // n_seen.clamp(min=1), lens - 1)
        rows = data.offsets[idx].unsqueeze(1) + picked
        feats = data.features.index_select(0, rows.reshape(-1)).reshape(len(chunk), t_max, -1)
        feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        out: BaseOutput = model(feats, mask)
        cas, att = out.cas.float().cpu().numpy(), out.attention.float().cpu().numpy()
        extra = {k: out.extras[k].float().cpu().numpy() for k in keys if out.extras.get(k) is not None}
        for row, j in enumerate(chunk):
            n = int(seen[j])
            entry = {"cas": cas[row, :n], "attention": att[row, :n]}
            entry.update({k: v[row, :n] for k, v in extra.items()})
            if n != int(lengths[j]):
                entry["video_length"] = np.asarray(int(lengths[j]))
            results[data.video_ids[j]] = entry
    model.train(was_training)
    return {vid: results[vid] for vid in data.video_ids}


def detect(
    model: nn.Module, videos: DeviceFeatureSet, gt: Mapping[str, Any], config: Any, source: str = "auto"
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Model -> per-snippet outputs -> the method's detections in seconds.

    ``gt`` supplies the class names, ``snippet_seconds`` and each video's ``duration``;
    ``source`` which proposals are scored (auto | head | base | merge: an inference choice,
    not a training setting).  Returns (outputs, ActivityNet results JSON).
    """
    outputs = infer(model, videos)
    return outputs, predictions_from_outputs(outputs, gt, config, source)


def score_predictions(gt: Mapping[str, Any], predictions: dict, config: Any) -> dict[str, Any]:
    """Official-protocol detection mAP on the test split (the ``evaluation`` package)."""
    from evaluation.detection import evaluate_detection

    return evaluate_detection(
        gt,
        predictions,
        subset="test",
        tiou_thresholds=list(config.test.tiou_thresholds),
        ambiguous=gt.get("ambiguous") or {},
        filter_ambiguous=bool(config.test.filter_ambiguous),
    )


def evaluate_model(
    model: nn.Module, videos: DeviceFeatureSet, gt: Mapping[str, Any], config: Any, source: str = "auto"
) -> tuple[dict, dict, dict, float]:
    """:func:`detect` + mAP on the test split; returns (outputs, predictions, metrics, seconds)."""
    start = time.perf_counter()
    outputs, predictions = detect(model, videos, gt, config, source)
    metrics = score_predictions(gt, predictions, config)
    return outputs, predictions, metrics, time.perf_counter() - start


def average_map(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``average_mAP`` of a metrics dict as threshold range ("0.1:0.5") -> value."""
    return {str(k): float(v) for k, v in metrics["average_mAP"].items()}
