"""What ActivityNet1.2 changes, checked on its own: the activitynet family's settings and
post-processing, scoring at tIoU 0.5:0.05:0.95 against the real set's zero-length and
past-the-end segments, the localization head's pseudo-labels when one instance covers most of
a video, and every base method training and scoring on an ActivityNet-shaped toy set (CPU,
seconds; the generated set itself is tests/test_synthetic_anet.py's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.toy_data import make_activitynet_toy

from evaluation.detection import evaluate_detection
from evaluation.thresholds import parse_tiou
from wtal_data.canonical import load_ground_truth
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.mllm4wtal.pseudo_labels import PseudoLabelRule, pseudo_instances
from wtal_training.models import BASE_METHODS

torch.set_num_threads(1)
ANET_TIOU = parse_tiou("0.5:0.95:0.05")


# -- the family's settings ----------------------------------------------------------------------
def test_activitynet_family_settings_and_the_same_post_processing():
    """The public ActivityNet scripts (DELU's train_activitynet.sh, DDG-Net's train_activity.sh)
    change the training (60 snippets, k 5, the ANT pooling, DELU_ACT's ReLU evidence with the
    squared-error loss, lr 3e-5) and the thresholds (0.5:0.95); the proposals are the same
    multiple_threshold_hamnet as on THUMOS14 (DELU: 20 attention thresholds, soft-NMS sigma
    0.3, class threshold 0.2, proposals of <= 1 snippet dropped)."""
    post = ("class_threshold", "num_thresholds", "outer_ratio", "gamma_oic", "nms_sigma", "min_proposal_length")
    for method in ("delu", "co2net", "ddgnet"):
        anet, thumos = build_config(method, "activitynet"), build_config(method, "thumos14")
        assert [anet.test[f] for f in post] == [thumos.test[f] for f in post], method
        assert (anet.data.max_seqlen, anet.model.k, anet.model.pool_t, anet.optimiser.lr) == (60, 5.0, 5, 3e-5)
        assert tuple(anet.test.tiou_thresholds) == pytest.approx(ANET_TIOU)
    delu = build_config("delu", "activitynet")
    assert (delu.own.edl_form, delu.own.alpha_edl, delu.own.rat_atn) == ("relu_mse", 1.2, 5.0)
    assert delu.test.num_thresholds == 20
    assert build_config("um", "activitynet").data.max_seqlen == 50  # UM's T = 50
    # the ANT pooling: a mean filter of (60 // 5) | 1 = 13 snippets on the CAS and attention
    model = BASE_METHODS["delu"](16, 3, **BASE_METHODS["delu"].hyperparameters_of(delu))
    assert model.pool_kernel == 13


# -- evaluation: the real ground truth's edge cases -------------------------------------------
def test_zero_length_and_past_the_end_ground_truth_are_scored_as_the_official_code():
    """At every threshold of 0.5:0.95: a zero-length segment stays a positive that no prediction of
    positive length can match (tIoU 0), so it caps recall; a segment 0.3 s past the end is matched
    by a detection clipped to the duration (tIoU 30 / 30.3).  Ranked TP, FP, TP over 3 positives:
    AP = 1/3 x 1 + 1/3 x 2/3 = 5/9."""
    gt = {
        "classes": ["Washing dishes"],
        "database": {
            "a": {
                "subset": "test",
                "duration": 100.0,
                "annotations": [
                    {"label": "Washing dishes", "segment": [10.0, 90.0]},
                    {"label": "Washing dishes", "segment": [50.0, 50.0]},
                ],
            },
            "b": {
                "subset": "test",
                "duration": 60.0,
                "annotations": [{"label": "Washing dishes", "segment": [30.0, 60.3]}],
            },
        },
    }
    preds = {
        "results": {
            "a": [
                {"label": "Washing dishes", "score": 0.9, "segment": [10.0, 90.0]},
                {"label": "Washing dishes", "score": 0.8, "segment": [49.5, 50.5]},  # around the instant
            ],
            "b": [{"label": "Washing dishes", "score": 0.7, "segment": [30.0, 60.0]}],
        }
    }
    result = evaluate_detection(gt, preds, subset="test", tiou_thresholds=ANET_TIOU)
    assert list(result["average_mAP"]) == ["0.5:0.95"]
    assert all(v == pytest.approx(5 / 9) for v in result["mAP"].values())
    assert result["average_mAP"]["0.5:0.95"] == pytest.approx(5 / 9)
    # a zero-length detection on the instant itself: 0 / 0, defined as tIoU 0 (docstring of
    # evaluation/detection.py: the official code's NaN would count as a match)
    preds["results"]["a"][1]["segment"] = [50.0, 50.0]
    again = evaluate_detection(gt, preds, subset="test", tiou_thresholds=ANET_TIOU)
    assert again["average_mAP"]["0.5:0.95"] == pytest.approx(5 / 9)
    # without the zero-length positive the same detections score 1/2 x 1 + 1/2 x 2/3 = 5/6
    gt["database"]["a"]["annotations"].pop()
    without = evaluate_detection(gt, preds, subset="test", tiou_thresholds=ANET_TIOU)
    assert without["average_mAP"]["0.5:0.95"] == pytest.approx(5 / 6)


# -- the localization head's pseudo-labels on ActivityNet-like videos ---------------------------
def _outputs(attention, class_column, num_classes=3):
    attention = np.asarray(attention, dtype=np.float32)
    cas = np.zeros((len(attention), num_classes + 1), dtype=np.float32)
    cas[:, class_column] = 4.0 * attention
    cas[:, -1] = 4.0 * (1 - attention)
    return {"cas": cas, "attention": attention}


def _covered(inst, length):
    covered = np.zeros(length, dtype=bool)
    for s, e in zip(inst.start, inst.end):
        covered[int(s) : int(np.ceil(e))] = True
    return covered


def test_an_instance_over_85_percent_of_the_video_becomes_a_pseudo_instance():
    """ActivityNet's instances often cover most of a video (64 % on average over the real set,
    1.5 per video).  With max_share 0.9 an instance of 85 % is taken by the rule; one of 95 %
    by the fallback (no proposal fits under the share: the best alone); two instances of 38 %
    and 40 % are both taken."""
    config = build_config("delu", "activitynet", iterations=100)
    rule = PseudoLabelRule()  # min_relative_score 0.5, max_overlap 0.5, max_share 0.9
    t = np.arange(200)
    videos = {
        "one_85": np.where((t >= 10) & (t < 180), 0.9, 0.05),
        "one_95": np.where((t >= 5) & (t < 195), 0.9, 0.05),
        "two": np.where(((t >= 4) & (t < 80)) | ((t >= 100) & (t < 180)), 0.9, 0.05),
    }
    outputs = {vid: _outputs(att, 1) for vid, att in videos.items()}
    found = pseudo_instances(BASE_METHODS["delu"], outputs, {v: np.array([1]) for v in videos}, config, rule)
    for vid, attention in videos.items():
        covered = _covered(found[vid], 200)
        assert (covered == (attention > 0.5)).all(), vid  # exactly the instances, nothing more
        assert set(found[vid].label.tolist()) == {1}
    assert len(found["one_85"].start) == 1 and _covered(found["one_85"], 200).mean() == pytest.approx(0.85)
    assert len(found["two"].start) == 2


# -- every base method on an ActivityNet-shaped toy set ----------------------------------------
@pytest.fixture(scope="module")
def anet_toy(tmp_path_factory):
    return make_activitynet_toy(tmp_path_factory.mktemp("anet_toy"))


def test_toy_set_has_the_real_sets_shape(anet_toy):
    gt = load_ground_truth(anet_toy)
    assert gt["family"] == "activitynet"
    segments = [(e, a["segment"]) for e in gt["database"].values() for a in e["annotations"]]
    assert any(s == e for _, (s, e) in segments)  # a zero-length segment
    assert any(e > entry["duration"] for entry, (_, e) in segments)  # one past the end


@pytest.mark.parametrize("method", ["delu", "co2net", "ddgnet", "um", "zhou2023"])
def test_each_base_method_trains_and_scores_at_activitynet_thresholds(anet_toy, tmp_path, method):
    """A few iterations with the activitynet family's settings (UM resamples to T = 50, DDG-Net
    builds its graph on videos of 60-140 snippets), then inference on the test videos and mAP at
    0.5:0.05:0.95 with its average, against the zero-length and past-the-end segments."""
    out = tmp_path / method
    args = ["train", "--data", str(anet_toy), "--method", method, "--iterations", "4", "--seeds", "0"]
    args += ["--device", "cpu", "--output-dir", str(out), "--no-progress", "--set", "num_timeline_videos=1"]
    assert main(args) == 0
    scored = json.loads((out / "seed0" / "map.json").read_text())
    assert [float(k) for k in scored["mAP"]] == pytest.approx(ANET_TIOU)
    assert list(scored["average_mAP"]) == ["0.5:0.95"] and 0.0 <= scored["average_mAP"]["0.5:0.95"] <= 1.0
    record = json.loads((out / "results.json").read_text())
    assert record["config"]["family"] == "activitynet"
    assert record["config"]["data"]["max_seqlen"] == (50 if method == "um" else 60)
    preds = json.loads((out / "seed0" / "predictions.json").read_text())["results"]
    gt = load_ground_truth(anet_toy)
    for vid, items in preds.items():  # detections stay inside the video, in seconds
        assert all(0 <= p["segment"][0] < p["segment"][1] <= gt["database"][vid]["duration"] for p in items), vid
