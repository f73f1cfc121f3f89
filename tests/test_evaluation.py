"""Tests of evaluation/: the ActivityNet detection protocol, from its definition.

Hand-computed cases use AP = VOC-2011 interpolated area: precision made monotone from
the right, summed over the recall steps.  ``npos`` is the number of ground-truth
segments of the class in the subset.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.detection_inputs import ap_at, gt_db, preds

from evaluation import (
    ACTIVITYNET_TIOU,
    THUMOS14_TIOU,
    EvaluationError,
    evaluate_detection,
    parse_tiou,
)
from evaluation.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- hand-computed cases


def test_fp_then_two_tp():
    # GT A:[0,10],[20,30]. Order: FP(.9), TP(.8, tIoU .9), TP(.7, tIoU 1).
    # prec=[0,1/2,2/3], rec=[0,1/2,1] -> interpolated prec 2/3 everywhere -> AP = 2/3.
    gt = gt_db({"v1": ("test", [("A", 0, 10), ("A", 20, 30)])})
    p = preds([("v1", "A", 0.9, 50, 60), ("v1", "A", 0.8, 21, 30), ("v1", "A", 0.7, 0, 10)])
    r = evaluate_detection(gt, p, tiou_thresholds=[0.5])
    assert r["mAP"]["0.5"] == pytest.approx(2 / 3, abs=1e-12)
    assert r["num_ground_truth"] == 2 and r["num_predictions"] == 3


def test_threshold_dependence():
    # pred [0,5] vs GT [0,10]: tIoU exactly 0.5 -> TP for thr <= 0.5 (AP 1), FP above (AP 0).
    gt = gt_db({"v1": ("test", [("A", 0, 10)])})
    r = evaluate_detection(gt, preds([("v1", "A", 0.9, 0, 5)]), tiou_thresholds=THUMOS14_TIOU)
    assert [r["mAP"][k] for k in ("0.1", "0.3", "0.5", "0.6", "0.7")] == [1, 1, 1, 0, 0]
    assert r["average_mAP"] == pytest.approx({"0.1:0.5": 1.0, "0.3:0.7": 3 / 5, "0.1:0.7": 5 / 7})


def test_greedy_takes_highest_tiou_not_optimal_assignment():
    # GT1 [0,10], GT2 [6,16].  P1 [4,14] (.9): tIoU 6/14=.43 with GT1, 8/12=.67 with GT2 -> GT2.
    # P2 [6,16] (.8): GT2 taken; GT1 tIoU 4/16=.25.
    # thr .3: tp=[1,0] prec=[1,.5] rec=[.5,.5] -> AP .5;  thr .1: both TP -> AP 1.
    gt = gt_db({"v1": ("test", [("A", 0, 10), ("A", 6, 16)])})
    p = preds([("v1", "A", 0.9, 4, 14), ("v1", "A", 0.8, 6, 16)])
    r = evaluate_detection(gt, p, tiou_thresholds=[0.1, 0.3])
    assert r["mAP"]["0.3"] == pytest.approx(0.5)
    assert r["mAP"]["0.1"] == pytest.approx(1.0)


def test_class_without_predictions_has_ap_zero():
    gt = gt_db({"v1": ("test", [("A", 0, 10), ("B", 20, 30)])})
    r = evaluate_detection(gt, preds([("v1", "A", 0.9, 0, 10)]), tiou_thresholds=[0.5])
    assert ap_at(r, "A", 0.5) == 1.0 and ap_at(r, "B", 0.5) == 0.0
    assert r["mAP"]["0.5"] == pytest.approx(0.5)


def test_empty_predictions():
    gt = gt_db({"v1": ("test", [("A", 0, 10)])})
    r = evaluate_detection(gt, {"results": {}}, tiou_thresholds=[0.5])
    assert r["mAP"]["0.5"] == 0.0 and r["num_predictions"] == 0


def test_predictions_for_videos_without_ground_truth_are_false_positives():
    # FP(.9, video absent from GT), FP(.85, train video), FP(.8, test video w/o class A),
    # TP(.7): prec=[0,0,0,1/4], rec=[0,0,0,1] -> AP 1/4.
    gt = gt_db({"v1": ("test", [("A", 0, 10)]), "v2": ("test", [("B", 0, 10)]), "t1": ("train", [("A", 0, 10)])})
    p = preds(
        [("nowhere", "A", 0.9, 0, 10), ("t1", "A", 0.85, 0, 10), ("v2", "A", 0.8, 0, 10), ("v1", "A", 0.7, 0, 10)]
    )
    r = evaluate_detection(gt, p, tiou_thresholds=[0.5])
    assert ap_at(r, "A", 0.5) == pytest.approx(0.25)
    assert r["num_predictions_outside_subset"] == 2


def test_duplicate_prediction_is_false_positive():
    # GT [0,10],[20,30]; P [0,10] .9 TP, duplicate .8 FP, [20,30] .5 TP.
    # prec=[1,.5,2/3], rec=[.5,.5,1] -> AP = .5*1 + .5*2/3 = 5/6.
    gt = gt_db({"v1": ("test", [("A", 0, 10), ("A", 20, 30)])})
    p = preds([("v1", "A", 0.9, 0, 10), ("v1", "A", 0.8, 0, 10), ("v1", "A", 0.5, 20, 30)])
    assert evaluate_detection(gt, p, tiou_thresholds=[0.5])["mAP"]["0.5"] == pytest.approx(5 / 6)


def test_score_ties_later_prediction_first():
    # Equal scores: the prediction later in the file is visited first (argsort()[::-1]).
    gt = gt_db({"v1": ("test", [("A", 0, 10)])})
    tp, fp = ("v1", "A", 0.5, 0, 10), ("v1", "A", 0.5, 50, 60)
    # file [TP, FP] -> visited FP, TP: prec=[0,.5], rec=[0,1] -> AP .5
    assert evaluate_detection(gt, preds([tp, fp]), tiou_thresholds=[0.5])["mAP"]["0.5"] == pytest.approx(0.5)
    # file [FP, TP] -> visited TP, FP -> AP 1
    assert evaluate_detection(gt, preds([fp, tp]), tiou_thresholds=[0.5])["mAP"]["0.5"] == pytest.approx(1.0)


def test_tiou_ties_take_later_ground_truth():
    # GT1 [0,10], GT2 [10,20]; P1 [5,15] tIoU 1/3 with both -> takes GT2 (later).
    # P2 [10,20]: GT2 taken, GT1 tIoU 0 -> FP.  tp=[1,0] -> AP .5 at thr .3.
    gt = gt_db({"v1": ("test", [("A", 0, 10), ("A", 10, 20)])})
    p = preds([("v1", "A", 0.9, 5, 15), ("v1", "A", 0.8, 10, 20)])
    assert evaluate_detection(gt, p, tiou_thresholds=[0.3])["mAP"]["0.3"] == pytest.approx(0.5)


def test_zero_length_segments():
    # GT [5,5] (zero length) and [0,10]. P [5,5] .9: tIoU 0 with both (0/0 defined as 0) -> FP.
    # P [0,10] .8 TP.  prec=[0,.5], rec=[0,.5] -> AP .25.
    gt = gt_db({"v1": ("test", [("A", 5, 5), ("A", 0, 10)])})
    p = preds([("v1", "A", 0.9, 5, 5), ("v1", "A", 0.8, 0, 10)])
    assert evaluate_detection(gt, p, tiou_thresholds=[0.1])["mAP"]["0.1"] == pytest.approx(0.25)


def test_unknown_label_rule():
    gt = gt_db(
        {"v1": ("test", [("A", 0, 10)]), "t1": ("train", [("OnlyTrain", 0, 5)])}, classes=["A", "OnlyTrain", "Declared"]
    )
    p = preds(
        [
            ("v1", "A", 0.9, 0, 10),
            ("v1", "Typo", 0.95, 0, 10),
            ("v1", "OnlyTrain", 0.99, 0, 10),
            ("v1", "Declared", 0.97, 0, 10),
        ]
    )
    with pytest.raises(EvaluationError, match="Typo"):
        evaluate_detection(gt, p, tiou_thresholds=[0.5])
    r = evaluate_detection(gt, p, tiou_thresholds=[0.5], unknown_labels="ignore")
    assert r["mAP"]["0.5"] == 1.0 and list(r["per_class"]) == ["A"]
    assert r["num_predictions_unknown_label"] == 1
    assert r["num_predictions_class_without_ground_truth"] == 2
    assert r["num_predictions"] == 1


def test_ambiguous_filter():
    # FP [20,25] (.9) overlaps ambiguous [22,30]; TP [0,10] (.8); [30,35] (.7) only touches it.
    # off: tp=[0,1,0] prec=[0,.5,1/3] rec=[0,1,1] -> AP .5; on: tp=[1,0] -> AP 1.
    gt = gt_db({"v1": ("test", [("A", 0, 10)])}, ambiguous={"v1": [[22, 30]]})
    p = preds([("v1", "A", 0.9, 20, 25), ("v1", "A", 0.8, 0, 10), ("v1", "A", 0.7, 30, 35)])
    off = evaluate_detection(gt, p, tiou_thresholds=[0.5])
    on = evaluate_detection(gt, p, tiou_thresholds=[0.5], filter_ambiguous=True)
    assert off["mAP"]["0.5"] == pytest.approx(0.5) and off["filter_ambiguous"] is False
    assert on["mAP"]["0.5"] == pytest.approx(1.0) and on["filter_ambiguous"] is True
    assert on["num_predictions_dropped_ambiguous"] == 1 and on["num_predictions"] == 2
    explicit = evaluate_detection(
        gt_db({"v1": ("test", [("A", 0, 10)])}),
        p,
        tiou_thresholds=[0.5],
        filter_ambiguous=True,
        ambiguous={"v1": [[22, 30]]},
    )
    assert explicit["mAP"] == on["mAP"]
    with pytest.raises(EvaluationError, match="ambiguous"):
        evaluate_detection(gt_db({"v1": ("test", [("A", 0, 10)])}), p, filter_ambiguous=True)


def test_subset_selection():
    gt = gt_db({"a": ("training", [("A", 0, 10)]), "b": ("validation", [("A", 0, 10), ("B", 20, 30)])})
    p = preds([("b", "A", 0.9, 0, 10)])
    val = evaluate_detection(gt, p, subset="validation", tiou_thresholds=[0.5])
    assert val["num_ground_truth"] == 2 and val["mAP"]["0.5"] == pytest.approx(0.5)
    train = evaluate_detection(gt, p, subset="training", tiou_thresholds=[0.5])
    assert train["num_ground_truth"] == 1 and train["mAP"]["0.5"] == 0.0  # video b is outside
    both = evaluate_detection(gt, p, subset=None, tiou_thresholds=[0.5])
    assert both["num_ground_truth"] == 3 and both["num_videos"] == 2
    with pytest.raises(EvaluationError, match="validation"):
        evaluate_detection(gt, p, subset="test")


def test_bad_inputs_raise_clear_errors():
    gt = gt_db({"v1": ("test", [("A", 0, 10)])})
    with pytest.raises(EvaluationError, match="database"):
        evaluate_detection({"videos": {}}, preds([]))
    with pytest.raises(EvaluationError, match="results"):
        evaluate_detection(gt, {"predictions": {}})
    with pytest.raises(EvaluationError, match="v1"):
        evaluate_detection(gt, preds([("v1", "A", 0.9, 10, 5)]))  # end before start
    with pytest.raises(EvaluationError, match="v1"):
        evaluate_detection(gt, preds([("v1", "A", float("nan"), 0, 5)]))
    with pytest.raises(EvaluationError, match="prediction 0"):
        evaluate_detection(gt, {"results": {"v1": [{"label": "A", "segment": [0, 1]}]}})
    with pytest.raises(EvaluationError, match="v2"):
        evaluate_detection(gt_db({"v2": ("test", [("A", 3, 1)])}), preds([]))


def test_string_segments_and_presets():
    # The public THUMOS14 gt.json stores times as strings; the official code float()s them.
    gt = {"database": {"v": {"subset": "test", "annotations": [{"label": "A", "segment": ["0.0", "10.0"]}]}}}
    r = evaluate_detection(gt, preds([("v", "A", 1.0, 0, 10)]), tiou_thresholds=ACTIVITYNET_TIOU)
    assert list(r["average_mAP"]) == ["0.5:0.95"] and r["average_mAP"]["0.5:0.95"] == 1.0
    assert list(r["mAP"]) == ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]


def test_parse_tiou():
    assert parse_tiou("0.1:0.7:0.1") == THUMOS14_TIOU
    assert parse_tiou("0.5:0.95:0.05") == ACTIVITYNET_TIOU == tuple(np.linspace(0.5, 0.95, 10))
    assert parse_tiou("0.5,0.3,0.7") == (0.3, 0.5, 0.7)
    for bad in ("0.1:0.7", "a,b", "0:0.5:0.1", "0.1:0.75:0.1", "0.5,0.5"):
        with pytest.raises(EvaluationError):
            parse_tiou(bad)


# ---------------------------------------------------------------- real annotations (copied into data/)

THUMOS_GT = REPO / "data" / "thumos14" / "raw" / "um-format" / "gt.json"


@pytest.mark.skipif(not THUMOS_GT.exists(), reason="THUMOS14 gt.json not copied into data/")
def test_real_thumos14_ground_truth_as_predictions_scores_one():
    gt = json.loads(THUMOS_GT.read_text())
    items = [
        (vid, a["label"], 1.0, float(a["segment"][0]), float(a["segment"][1]))
        for vid, v in gt["database"].items()
        if v["subset"] == "test"
        for a in v["annotations"]
    ]
    r = evaluate_detection(gt, preds(items), subset="test")
    assert r["num_ground_truth"] == len(items) and r["num_classes"] == 20
    # Duplicated GT rows (e.g. CliffDiving also labelled Diving) stay distinct classes; all match.
    assert all(v == pytest.approx(1.0) for v in r["mAP"].values())


# ---------------------------------------------------------------- CLI


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_cli_round_trip(tmp_path, capsys):
    gt = write(tmp_path / "gt.json", gt_db({"v1": ("test", [("A", 0, 10), ("A", 20, 30)])}))
    p = write(
        tmp_path / "pred.json", preds([("v1", "A", 0.9, 50, 60), ("v1", "A", 0.8, 21, 30), ("v1", "A", 0.7, 0, 10)])
    )
    out = tmp_path / "res" / "map.json"
    code = cli_main(
        [
            "--ground-truth",
            str(gt),
            "--predictions",
            str(p),
            "--subset",
            "test",
            "--tiou",
            "0.1:0.7:0.1",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["mAP"]["0.5"] == pytest.approx(2 / 3)
    assert set(result["average_mAP"]) == {"0.1:0.5", "0.3:0.7", "0.1:0.7"}
    assert result["filter_ambiguous"] is False
    assert "0.5" in capsys.readouterr().out
    assert not list(out.parent.glob("*.tmp"))
    code = cli_main(
        [
            "--ground-truth",
            str(gt),
            "--predictions",
            str(p),
            "--preset",
            "activitynet",
            "--output",
            str(out),
            "--filter-ambiguous",
        ]
    )
    assert code == 2  # no 'ambiguous' key in this ground truth


def test_cli_bad_input_exit_code_2(tmp_path):
    gt = write(tmp_path / "gt.json", gt_db({"v1": ("test", [("A", 0, 10)])}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    nokey = write(tmp_path / "nokey.json", {"predictions": {}})
    cmd = [sys.executable, "-m", "evaluation", "--ground-truth", str(gt), "--output", str(tmp_path / "o.json")]
    for pred_path, needle in ((tmp_path / "missing.json", "missing.json"), (bad, "bad.json"), (nokey, "nokey.json")):
        proc = subprocess.run(cmd + ["--predictions", str(pred_path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr
    assert not (tmp_path / "o.json").exists()
