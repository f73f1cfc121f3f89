"""benchmarks/calibrate_vd.py: held-out views of the training videos, averaged over the set's own
tIoU range (THUMOS14 0.1:0.7, ActivityNet 0.5:0.95)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers.toy_data import make_activitynet_toy, make_toy_dataset

from wtal_data.canonical import load_ground_truth

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def calibrate():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("calibrate_vd", ROOT / "benchmarks" / "calibrate_vd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_headline_range_follows_the_family(calibrate, tmp_path):
    thumos = make_toy_dataset(tmp_path / "thumos", num_train=6, num_test=3, feature_dim=8)
    anet = make_activitynet_toy(tmp_path / "anet")
    assert calibrate.headline_range(thumos) == "0.1:0.7" and calibrate.headline_range(anet) == "0.5:0.95"


def test_per_class_split_holds_out_every_class(calibrate, tmp_path):
    """100 classes of 10 videos: a random fifth almost never holds out every class; a fifth of
    each class does, keeping 8 of each for training."""
    db = {
        f"v{c:03d}_{i}": {"subset": "train", "labels": [f"c{c}"], "annotations": []}
        for c in range(100)
        for i in range(10)
    }
    gt = {"classes": [f"c{c}" for c in range(100)], "database": db}
    kept, held = calibrate.holdout_split(gt, 0.2, seed=0, per_class=True)
    assert len(held) == 200 and len(kept) == 800
    assert {db[v]["labels"][0] for v in held} == set(gt["classes"])
    assert calibrate.holdout_split(gt, 0.2, seed=0, per_class=True) == (kept, held)
    with pytest.raises(SystemExit, match="per-class"):
        calibrate.holdout_split(gt, 0.2, seed=0)


def test_views_keep_the_family(calibrate, tmp_path):
    anet = make_activitynet_toy(tmp_path / "anet")
    gt = load_ground_truth(anet)
    kept, held = calibrate.holdout_split(gt, 0.3, seed=0, per_class=True)
    calibrate.write_view(anet, tmp_path / "heldout", kept, held, "heldout")
    assert load_ground_truth(tmp_path / "heldout")["family"] == "activitynet"
    assert calibrate.headline_range(tmp_path / "heldout") == "0.5:0.95"
