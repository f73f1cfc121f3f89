"""Post-processing on constructed CAS and attention: known segments come back in seconds."""

import math

import numpy as np
import pytest

from wtal_common.errors import ConfigError
from wtal_training.config import default_config
from wtal_training.models import BASE_METHODS
from wtal_training.postprocess import predictions_from_outputs, video_detections
from wtal_training.proposals import (
    batched_soft_nms,
    outer_inner_scores,
    quantile_normalise,
    threshold_runs,
    video_class_scores,
)

GT = {
    "classes": ["a", "b"],
    "snippet_seconds": 0.5,
    "database": {"v1": {"subset": "test", "duration": 50.0, "labels": ["b"], "annotations": []}},
}


def constructed(t=100):
    att = np.full(t, 0.02)
    att[10:20] = 0.95
    att[60:70] = 0.95
    cas = np.zeros((t, 3))
    cas[10:20, 1] = 5.0
    cas[60:70, 1] = 5.0
    return cas, att


def test_runs_and_outer_inner_contrast():
    s, e = threshold_runs(np.array([0, 1, 1, 0, 1.0]), np.array([0.5]))
    assert s.tolist() == [1, 4] and e.tolist() == [3, 5]
    wtcam = np.array([[0.0], [0.0], [4.0], [4.0], [0.0], [0.0]])
    # run [2, 4): inner 4, outer margin floor(0.25*2)=0 -> one snippet each side? floor(2-0.5)=1 and floor(3+0.5)=3 -> snippet 1 only
    val = outer_inner_scores(wtcam, np.array([2]), np.array([4]))
    assert math.isclose(val[0, 0], 4.0)


def test_known_segments_recovered_in_seconds():
    cas, att = constructed()
    assert np.argmax(video_class_scores(cas * att[:, None])) == 1
    preds = predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, GT, default_config())
    top = preds["results"]["v1"][:2]
    assert {p["label"] for p in top} == {"b"}
    assert sorted(tuple(p["segment"]) for p in top) == [(5.0, 10.0), (30.0, 35.0)]
    assert all(p["segment"][1] <= 50.0 for p in preds["results"]["v1"])


def test_proposals_past_the_annotated_duration_are_clipped_or_dropped():
    """Snippet grids overrun a video's duration: a proposal starting after the end is no
    detection (it once came out as [100.88, 100.542], which the evaluator rejects)."""
    cas, att = constructed()  # proposals at 5-10 s and 30-35 s
    short = {**GT, "database": {"v1": {**GT["database"]["v1"], "duration": 28.0}}}
    segments = [
        p["segment"]
        for p in predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, short, default_config())["results"][
            "v1"
        ]
    ]
    assert segments and all(0 <= a < b <= 28.0 for a, b in segments)
    assert (5.0, 10.0) in {tuple(s) for s in segments} and not any(a >= 28.0 for a, _ in segments)
    clipped = {**GT, "database": {"v1": {**GT["database"]["v1"], "duration": 32.0}}}
    ends = [
        p["segment"]
        for p in predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, clipped, default_config())["results"][
            "v1"
        ]
    ]
    assert [30.0, 32.0] in ends


def test_localization_head_proposals_are_decoded():
    cas, att = constructed()
    att[:] = 0.02  # no attention proposals; only the head's
    loc_scores = np.zeros((100, 2))
    loc_scores[40, 1] = 0.9
    loc_offsets = np.zeros((100, 2))
    loc_offsets[40] = [5.5, 4.5]  # centre 40.5 -> snippets [35, 45)
    config = default_config().updated({"test": {"loc_decode": "regression"}})
    preds = predictions_from_outputs(
        {"v1": {"cas": cas, "attention": att, "loc_scores": loc_scores, "loc_offsets": loc_offsets}}, GT, config
    )
    assert preds["results"]["v1"][0]["segment"] == [17.5, 22.5]
    # ranked by the head's probability x the base's video-level score of the class
    class_score = video_class_scores(cas * att[:, None], config.test.video_score_ratio)[1]
    assert math.isclose(preds["results"]["v1"][0]["score"], 0.9 * class_score, rel_tol=1e-9)


def test_soft_nms_gaussian_decay_and_groups_independent():
    group = (np.array([0.0, 0.0, 50.0]), np.array([10.0, 10.0, 60.0]), np.array([1.0, 0.8, 0.5]))
    other = (np.array([0.0]), np.array([10.0]), np.array([0.3]))
    out = batched_soft_nms([group, other], sigma=0.3)
    assert np.allclose(out[0], [1.0, 0.8 * math.exp(-1 / 0.3), 0.5])
    assert np.allclose(out[1], [0.3])


def test_short_proposals_dropped_after_soft_nms_as_delu():
    cas, att = constructed()
    att[40] = 0.95  # a one-snippet run
    cas[40, 1] = 5.0
    # default_config() is DELU's THUMOS14 defaults (min_proposal_length 1): keep all explicitly
    keep_all = predictions_from_outputs(
        {"v1": {"cas": cas, "attention": att}}, GT, default_config().updated({"test": {"min_proposal_length": 0.0}})
    )
    assert any(p["segment"] == [20.0, 20.5] for p in keep_all["results"]["v1"])
    delu = predictions_from_outputs(
        {"v1": {"cas": cas, "attention": att}}, GT, default_config().updated({"test": {"min_proposal_length": 1.0}})
    )
    segs = [p["segment"] for p in delu["results"]["v1"]]
    assert [20.0, 20.5] not in segs and [5.0, 10.0] in segs


def _with_head():
    """Base attention finds [10, 20) and [60, 70) (OIC scores ~ 5, logit scale); the head finds
    [35, 45) with 0.9 and [80, 84) with 0.3 (sigmoid scale)."""
    cas, att = constructed()
    loc_scores = np.zeros((100, 2))
    loc_offsets = np.zeros((100, 2))
    loc_scores[40, 1], loc_offsets[40] = 0.9, [5.5, 4.5]
    loc_scores[82, 1], loc_offsets[82] = 0.3, [2.5, 1.5]
    return {"v1": {"cas": cas, "attention": att, "loc_scores": loc_scores, "loc_offsets": loc_offsets}}


def test_inference_uses_the_head_alone_by_default_as_the_paper():
    outputs = _with_head()
    regression = default_config().updated({"test": {"loc_decode": "regression"}})
    head = predictions_from_outputs(outputs, GT, regression)["results"]["v1"]
    assert [p["segment"] for p in head] == [[17.5, 22.5], [40.0, 42.0]]
    out = outputs["v1"]
    class_score = video_class_scores(out["cas"] * out["attention"][:, None], regression.test.video_score_ratio)[1]
    assert [p["score"] for p in head] == pytest.approx([0.9 * class_score, 0.3 * class_score])
    base = predictions_from_outputs(outputs, GT, default_config(), "base")["results"]["v1"]
    assert [17.5, 22.5] not in [p["segment"] for p in base] and {(5.0, 10.0), (30.0, 35.0)} <= {
        tuple(p["segment"]) for p in base
    }
    with pytest.raises(ConfigError, match="proposal-source"):
        cas, att = constructed()
        predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, GT, default_config(), "head")


def test_merged_proposals_get_comparable_scores():
    outputs = _with_head()
    out = outputs["v1"]
    regression = default_config().updated({"test": {"loc_decode": "regression"}})
    raw = video_detections(BASE_METHODS[regression.method], out, regression, "merge")
    head_best = raw.score[(raw.source == 1) & (raw.start == 35.0)]
    # the scale mismatch: raw, the head's best proposal ranks below every base proposal
    assert head_best.item() <= 0.9 and raw.score[raw.source == 0].min() > 0.9
    merged = predictions_from_outputs(
        outputs, GT, default_config().updated({"test": {"loc_decode": "regression"}}), "merge"
    )
    merged = merged["results"]["v1"]
    assert all(0 < p["score"] <= 1 for p in merged)
    score = {tuple(p["segment"]): p["score"] for p in merged}
    assert score[(17.5, 22.5)] == max(score.values()) == 1.0  # level with the best base proposals
    ranked = [p["segment"] for p in merged]
    assert ranked.index([40.0, 42.0]) < len(ranked) - 1  # the head's weaker one is no longer last


def test_quantile_normalise_per_source():
    scores = np.array([5.0, 7.0, 6.0, 0.2, 0.9])
    sources = np.array([0, 0, 0, 1, 1])
    assert quantile_normalise(scores, sources).tolist() == [1 / 3, 1.0, 2 / 3, 0.5, 1.0]
