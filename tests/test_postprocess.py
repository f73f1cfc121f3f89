"""Post-processing on constructed CAS and attention: known segments come back in seconds."""

import math

import numpy as np

from wtal_training.config import TrainConfig
from wtal_training.postprocess import (
    batched_soft_nms,
    outer_inner_scores,
    predictions_from_outputs,
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
    preds = predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, GT, TrainConfig())
    top = preds["results"]["v1"][:2]
    assert {p["label"] for p in top} == {"b"}
    assert sorted(tuple(p["segment"]) for p in top) == [(5.0, 10.0), (30.0, 35.0)]
    assert all(p["segment"][1] <= 50.0 for p in preds["results"]["v1"])


def test_localization_head_proposals_are_decoded():
    cas, att = constructed()
    att[:] = 0.02  # no attention proposals; only the head's
    loc_scores = np.zeros((100, 2))
    loc_scores[40, 1] = 0.9
    loc_offsets = np.zeros((100, 2))
    loc_offsets[40] = [5.5, 4.5]  # centre 40.5 -> snippets [35, 45)
    preds = predictions_from_outputs(
        {"v1": {"cas": cas, "attention": att, "loc_scores": loc_scores, "loc_offsets": loc_offsets}}, GT, TrainConfig()
    )
    assert preds["results"]["v1"][0]["segment"] == [17.5, 22.5]
    assert math.isclose(preds["results"]["v1"][0]["score"], 0.9)


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
    # TrainConfig() is DELU's THUMOS14 defaults (min_proposal_length 1): keep all explicitly
    keep_all = predictions_from_outputs(
        {"v1": {"cas": cas, "attention": att}}, GT, TrainConfig(min_proposal_length=0.0)
    )
    assert any(p["segment"] == [20.0, 20.5] for p in keep_all["results"]["v1"])
    delu = predictions_from_outputs({"v1": {"cas": cas, "attention": att}}, GT, TrainConfig(min_proposal_length=1.0))
    segs = [p["segment"] for p in delu["results"]["v1"]]
    assert [20.0, 20.5] not in segs and [5.0, 10.0] in segs
