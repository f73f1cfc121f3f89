"""evaluation/'s detection AP against two references: the official algorithm written plainly
(one prediction, one threshold at a time) on random inputs with ties, and the official
ActivityNet evaluator's own code on tie-free ones."""

from __future__ import annotations

import random

import numpy as np
import pytest
from helpers.detection_inputs import ap_at, gt_db, preds

from evaluation import ACTIVITYNET_TIOU, THUMOS14_TIOU, evaluate_detection


def reference_ap(gt: dict, pred: dict, subset, thresholds):
    """The official algorithm written plainly (one prediction, one threshold at a time)."""
    gts: dict[str, list] = {}
    for vid, v in gt["database"].items():
        if subset is not None and v["subset"] != subset:
            continue
        for ann in v["annotations"]:
            gts.setdefault(ann["label"], []).append((vid, float(ann["segment"][0]), float(ann["segment"][1])))
    out = {}
    for cls, g in gts.items():
        ps = [
            (vid, r["score"], r["segment"][0], r["segment"][1])
            for vid, items in pred["results"].items()
            for r in items
            if r["label"] == cls
        ]
        visit = sorted(range(len(ps)), key=lambda i: (-ps[i][1], -i))
        aps = []
        for thr in thresholds:
            taken, tp = set(), []
            for i in visit:
                vid, _, s, e = ps[i]
                best, best_j = None, None
                for j, (gv, gs, ge) in enumerate(g):
                    if gv != vid or j in taken:
                        continue
                    inter = max(0.0, min(e, ge) - max(s, gs))
                    union = (ge - gs) + (e - s) - inter
                    t = inter / union if union > 0 else 0.0
                    if best is None or t >= best:  # '>=' : on ties the later GT wins
                        best, best_j = t, j
                if best is not None and best >= thr:
                    taken.add(best_j)
                    tp.append(1)
                else:
                    tp.append(0)
            prec, rec, c = [], [], 0
            for k, x in enumerate(tp):
                c += x
                prec.append(c / (k + 1))
                rec.append(c / len(g))
            mprec, mrec = [0.0] + prec + [0.0], [0.0] + rec + [1.0]
            for k in range(len(mprec) - 2, -1, -1):
                mprec[k] = max(mprec[k], mprec[k + 1])
            aps.append(sum((mrec[k] - mrec[k - 1]) * mprec[k] for k in range(1, len(mrec)) if mrec[k] != mrec[k - 1]))
        out[cls] = aps
    return out


def random_case(rng: random.Random):
    classes = [f"c{i}" for i in range(rng.randint(1, 4))]
    videos = {}
    for v in range(rng.randint(1, 5)):
        subset = "test" if rng.random() < 0.8 else "train"
        anns = []
        for _ in range(rng.randint(0, 6)):
            s = rng.randint(0, 40) * 0.5  # a coarse grid: exact tIoU ties and on-threshold values
            anns.append((rng.choice(classes), s, s + rng.randint(0, 16) * 0.5))
        videos[f"v{v}"] = (subset, anns)
    items = []
    for _ in range(rng.randint(0, 40)):
        vid = rng.choice(list(videos) + ["ghost"])
        s = rng.randint(0, 44) * 0.5
        items.append(
            (vid, rng.choice(classes), rng.choice([0.1, 0.5, 0.5, 0.9, rng.random()]), s, s + rng.randint(0, 16) * 0.5)
        )
    rng.shuffle(items)
    return gt_db(videos, classes=classes), preds(items)


@pytest.mark.parametrize("thresholds", [THUMOS14_TIOU, ACTIVITYNET_TIOU])
def test_agrees_with_loop_reference_on_random_inputs(thresholds):
    rng = random.Random(1234)
    checked = 0
    for _ in range(300):
        gt, pred = random_case(rng)
        if not any(a for s, a in [(v["subset"], v["annotations"]) for v in gt["database"].values()] if s == "test"):
            continue
        ref = reference_ap(gt, pred, "test", thresholds)
        got = evaluate_detection(gt, pred, subset="test", tiou_thresholds=thresholds)
        assert set(got["per_class"]) == set(ref)
        for cls, aps in ref.items():
            for thr, value in zip(thresholds, aps):
                assert abs(ap_at(got, cls, thr) - value) <= 1e-9, (cls, thr)
        ref_map = [np.mean([ref[c][i] for c in ref]) for i in range(len(thresholds))]
        assert np.allclose(list(got["mAP"].values()), ref_map, atol=1e-9, rtol=0)
        checked += 1
    assert checked > 200


def test_dense_single_group_agrees_with_reference():
    # Many predictions on one (video, class) group: exercises the step-wise matching.
    rng = random.Random(7)
    gt = gt_db({"v": ("test", [("A", s, s + rng.randint(1, 8)) for s in range(0, 200, 7)])})
    items = [
        ("v", "A", round(rng.random(), 2), s, s + rng.randint(0, 10)) for s in (rng.randint(0, 200) for _ in range(400))
    ]
    pred = preds(items)
    ref = reference_ap(gt, pred, "test", THUMOS14_TIOU)["A"]
    got = evaluate_detection(gt, pred, tiou_thresholds=THUMOS14_TIOU)
    assert np.allclose([ap_at(got, "A", t) for t in THUMOS14_TIOU], ref, atol=1e-9, rtol=0)


def _official_ap(gt: dict, pred: dict, subset, thresholds) -> dict:
    """The official evaluator's code (activitynet/ActivityNet Evaluation/eval_detection.py:
    ANETdetection._import_*, wrapper_compute_average_precision,
    compute_average_precision_detection, segment_iou, interpolated_prec_rec), transcribed
    with only ``np.float`` -> ``float`` (removed in NumPy 1.24)."""
    pd = pytest.importorskip("pandas")

    def segment_iou(target_segment, candidate_segments):
        tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
        tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
        segments_intersection = (tt2 - tt1).clip(0)
        segments_union = (
            (candidate_segments[:, 1] - candidate_segments[:, 0])
            + (target_segment[1] - target_segment[0])
            - segments_intersection
        )
        return segments_intersection.astype(float) / segments_union

    def interpolated_prec_rec(prec, rec):
        mprec = np.hstack([[0], prec, [0]])
        mrec = np.hstack([[0], rec, [1]])
        for i in range(len(mprec) - 1)[::-1]:
            mprec[i] = max(mprec[i], mprec[i + 1])
        idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
        return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])

    def compute_average_precision_detection(ground_truth, prediction, tiou_thresholds):
        ap = np.zeros(len(tiou_thresholds))
        if prediction.empty:
            return ap
        npos = float(len(ground_truth))
        lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
        sort_idx = prediction["score"].values.argsort()[::-1]
        prediction = prediction.loc[sort_idx].reset_index(drop=True)
        tp = np.zeros((len(tiou_thresholds), len(prediction)))
        fp = np.zeros((len(tiou_thresholds), len(prediction)))
        ground_truth_gbvn = ground_truth.groupby("video-id")
        for idx, this_pred in prediction.iterrows():
            try:
                ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video-id"])
            except Exception:
                fp[:, idx] = 1
                continue
            this_gt = ground_truth_videoid.reset_index()
            tiou_arr = segment_iou(
                this_pred[["t-start", "t-end"]].values.astype(float), this_gt[["t-start", "t-end"]].values.astype(float)
            )
            tiou_sorted_idx = tiou_arr.argsort()[::-1]
            for tidx, tiou_thr in enumerate(tiou_thresholds):
                for jdx in tiou_sorted_idx:
                    if tiou_arr[jdx] < tiou_thr:
                        fp[tidx, idx] = 1
                        break
                    if lock_gt[tidx, this_gt.loc[jdx]["index"]] >= 0:
                        continue
                    tp[tidx, idx] = 1
                    lock_gt[tidx, this_gt.loc[jdx]["index"]] = idx
                    break
                if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                    fp[tidx, idx] = 1
        tp_cumsum = np.cumsum(tp, axis=1).astype(float)
        fp_cumsum = np.cumsum(fp, axis=1).astype(float)
        recall_cumsum = tp_cumsum / npos
        precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
        for tidx in range(len(tiou_thresholds)):
            ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
        return ap

    activity_index, cidx = {}, 0
    video_lst, t_start_lst, t_end_lst, label_lst = [], [], [], []
    for videoid, v in gt["database"].items():
        if subset != v["subset"]:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = cidx
                cidx += 1
            video_lst.append(videoid)
            t_start_lst.append(float(ann["segment"][0]))
            t_end_lst.append(float(ann["segment"][1]))
            label_lst.append(activity_index[ann["label"]])
    ground_truth = pd.DataFrame({"video-id": video_lst, "t-start": t_start_lst, "t-end": t_end_lst, "label": label_lst})
    video_lst, t_start_lst, t_end_lst, label_lst, score_lst = [], [], [], [], []
    for videoid, v in pred["results"].items():
        for result in v:
            video_lst.append(videoid)
            t_start_lst.append(float(result["segment"][0]))
            t_end_lst.append(float(result["segment"][1]))
            label_lst.append(activity_index[result["label"]])
            score_lst.append(result["score"])
    prediction = pd.DataFrame(
        {"video-id": video_lst, "t-start": t_start_lst, "t-end": t_end_lst, "label": label_lst, "score": score_lst}
    )
    out = {}
    for activity, cidx in activity_index.items():
        out[activity] = compute_average_precision_detection(
            ground_truth.loc[ground_truth["label"] == cidx].reset_index(drop=True),
            prediction.loc[prediction["label"] == cidx].reset_index(drop=True),
            tiou_thresholds=np.asarray(thresholds),
        )
    return out


def test_agrees_with_official_code_on_tie_free_inputs():
    """Against the official code itself.  Continuous scores and times: no score or tIoU
    ties, whose order the official argsort leaves to NumPy's sort algorithm."""
    rng = random.Random(99)
    checked = 0
    for _ in range(60):
        classes = [f"c{i}" for i in range(rng.randint(1, 3))]
        videos = {}
        for v in range(rng.randint(1, 4)):
            anns = []
            for _ in range(rng.randint(0, 5)):
                s = rng.uniform(0, 50)
                anns.append((rng.choice(classes), s, s + rng.uniform(0.5, 15)))
            videos[f"v{v}"] = ("test" if rng.random() < 0.8 else "train", anns)
        gt = gt_db(videos, classes=classes)
        test_labels = {a["label"] for v in gt["database"].values() if v["subset"] == "test" for a in v["annotations"]}
        if not test_labels:
            continue
        items = []
        for _ in range(rng.randint(0, 30)):
            s = rng.uniform(0, 55)
            items.append(
                (
                    rng.choice(list(videos) + ["ghost"]),
                    rng.choice(sorted(test_labels)),
                    rng.random(),
                    s,
                    s + rng.uniform(0.5, 15),
                )
            )
        pred = preds(items)
        for thresholds in (THUMOS14_TIOU, ACTIVITYNET_TIOU):
            ref = _official_ap(gt, pred, "test", thresholds)
            got = evaluate_detection(gt, pred, subset="test", tiou_thresholds=thresholds)
            assert set(got["per_class"]) == set(ref)
            for cls, aps in ref.items():
                assert np.allclose([ap_at(got, cls, t) for t in thresholds], aps, atol=1e-9, rtol=0), cls
            assert np.allclose(list(got["mAP"].values()), np.mean(list(ref.values()), axis=0), atol=1e-9, rtol=0)
        checked += 1
    assert checked > 30
