"""The CO2-Net/DELU test-time recipe (``multiple_threshold_hamnet`` of the public code), the
default proposal hooks of :class:`~.base.BaseMethod`.

Per video: attention-weighted CAS -> video class scores (softmax of the mean of the top
T // ``video_score_ratio`` snippets); keep classes scoring >= ``class_threshold``, else the
best one; threshold the attention at ``linspace(0.1, 0.9, num_thresholds)`` (20 DELU, 10
CO2-Net and DDG-Net); every run of snippets above a threshold is a proposal for every kept
class, scored by outer-inner contrast (inner mean - mean over margins of ``outer_ratio`` x
length on both sides) + ``gamma_oic`` x the video score.  Soft-NMS and the short-proposal
filter come after (:mod:`wtal_training.postprocess`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..proposals import BASE, Proposals, outer_inner_scores, proposals_from_parts, threshold_runs, video_class_scores


def oic_class_scores(output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
    """(C,) video class scores from the attention-weighted CAS."""
    return video_class_scores(output["cas"] * output["attention"][:, None], config.test.video_score_ratio)


def oic_proposals(
    output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray, class_scores: np.ndarray
) -> Proposals:
    """Every attention run x every class in ``classes``, scored by outer-inner contrast."""
    cas, attention = output["cas"], output["attention"]
    cas_supp = cas * attention[:, None]
    chosen = np.asarray(classes, dtype=np.int64)
    starts, ends = threshold_runs(attention, np.linspace(0.1, 0.9, config.test.num_thresholds))
    if not len(starts):
        return proposals_from_parts([])
    contrast = outer_inner_scores(cas_supp[:, chosen], starts, ends, config.test.outer_ratio)
    contrast = contrast + config.test.gamma_oic * class_scores[chosen][None, :]
    r = len(starts)
    return proposals_from_parts(
        [
            (
                np.repeat(starts, len(chosen)).astype(np.float64),
                np.repeat(ends, len(chosen)).astype(np.float64),
                contrast.reshape(-1),
                np.tile(chosen, r),
                np.full(r * len(chosen), BASE),
            )
        ]
    )
