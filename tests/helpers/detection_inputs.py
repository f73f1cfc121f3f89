"""Ground truth and predictions written compactly, for the tests of evaluation/ (the
protocol's hand-computed cases and its agreement with reference implementations)."""

from __future__ import annotations


def gt_db(videos: dict, classes=None, ambiguous=None) -> dict:
    """videos: id -> (subset, [(label, start, end), ...])."""
    out = {
        "database": {
            vid: {
                "subset": subset,
                "duration": 200.0,
                "annotations": [{"label": lab, "segment": [s, e]} for lab, s, e in anns],
            }
            for vid, (subset, anns) in videos.items()
        }
    }
    if classes is not None:
        out["classes"] = classes
    if ambiguous is not None:
        out["ambiguous"] = ambiguous
    return out


def preds(items) -> dict:
    """items: [(video, label, score, start, end)] in file order."""
    res: dict = {}
    for vid, lab, score, s, e in items:
        res.setdefault(vid, []).append({"label": lab, "score": score, "segment": [s, e]})
    return {"results": res}


def ap_at(result, cls, thr):
    return result["per_class"][cls][format(thr, ".10g")]
