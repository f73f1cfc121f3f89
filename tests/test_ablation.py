"""The ablation tables (evaluation.ablation): per-arm mean and sample std over seeds, paired
differences from the reference arm over the seeds both have, and a percentile bootstrap
interval; values hand-computed."""

from __future__ import annotations

import json

import pytest

from evaluation.ablation import bootstrap_interval, markdown_tables, paired_difference, summarise_ablation
from wtal_common.errors import InputError


def test_bootstrap_of_equal_differences_is_that_value():
    assert bootstrap_interval([0.02, 0.02, 0.02]) == pytest.approx((0.02, 0.02))


def test_paired_difference_by_hand():
    """Seeds 0-2 are shared (seed 3 of the reference has no partner): differences 0.10,
    0.00, 0.10, mean 0.0667.  Bootstrap means of three draws from {0.1, 0, 0.1}: all-zero
    has probability 1/27 = 3.7% (> 2.5%), all-0.1 has 8/27 = 29.6%, so the 95% interval is
    exactly [0, 0.1], which touches 0: not separated."""
    arm = {"0": 0.30, "1": 0.25, "2": 0.20}
    reference = {"0": 0.20, "1": 0.25, "2": 0.10, "3": 0.50}
    d = paired_difference(arm, reference)
    assert d["seeds"] == ["0", "1", "2"]
    assert d["per_seed"] == pytest.approx({"0": 0.10, "1": 0.0, "2": 0.10})
    assert d["mean"] == pytest.approx(0.2 / 3)
    assert d["ci95"] == pytest.approx([0.0, 0.1])
    assert d["separated"] is False
    flipped = paired_difference(reference, arm)  # the order is arm - reference
    assert flipped["mean"] == pytest.approx(-0.2 / 3) and flipped["ci95"] == pytest.approx([-0.1, 0.0])


def test_paired_difference_without_common_seeds_is_an_input_error():
    with pytest.raises(InputError, match="no seed in common"):
        paired_difference({"0": 0.1}, {"1": 0.2})


def _write_map(path, map5, avg):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "mAP": {"0.5": map5},
                "average_mAP": {"0.1:0.7": avg},
                "per_class": {"A": {"0.5": map5}, "B": {"0.5": 0.0}},
            }
        )
    )
    return str(path)


def test_summary_of_a_study(tmp_path):
    base = {s: _write_map(tmp_path / f"b{s}.json", m, m) for s, m in zip("012", (0.10, 0.20, 0.30))}
    full = {s: _write_map(tmp_path / f"f{s}.json", m, m + 0.01) for s, m in zip("01", (0.15, 0.30))}
    spec = {
        "study": "s",
        "dataset": "gen",
        "synthetic": True,
        "mllm": "synthetic",
        "arms": [
            {"name": "baseline", "experiment": "b", "reference": None, "maps": base},
            {"name": "full", "experiment": "f", "reference": "b", "maps": full},
        ],
    }
    summary = summarise_ablation(spec)
    baseline, plugin = summary["arms"]
    assert baseline["metrics"]["mAP@0.5"]["mean"] == pytest.approx(0.20)
    assert baseline["metrics"]["mAP@0.5"]["std"] == pytest.approx(0.10)  # sample std (n - 1)
    assert "paired_difference" not in baseline
    assert plugin["paired_difference"]["mAP@0.5"]["per_seed"] == pytest.approx({"0": 0.05, "1": 0.10})
    assert plugin["paired_difference"]["avg 0.1:0.7"]["mean"] == pytest.approx(0.085)
    assert plugin["per_class_ap_mean"]["A"]["0.5"] == pytest.approx(0.225)
    assert plugin["per_class_ap_mean"]["B"]["0.5"] == 0.0
    table = markdown_tables(summary)
    assert "GENERATED data" in table
    # avg: differences 0.06, 0.11 -> bootstrap means 0.06 (1/4), 0.085 (1/2), 0.11 (1/4)
    assert "| full | baseline | 2 | +8.5 [+6.0, +11.0]* | +7.5 [+5.0, +10.0]* |" in table


def test_missing_evaluation_file_is_named(tmp_path):
    spec = {
        "study": "s",
        "dataset": "gen",
        "synthetic": True,
        "mllm": "m",
        "arms": [{"name": "a", "experiment": "a", "reference": None, "maps": {"0": str(tmp_path / "nope.json")}}],
    }
    with pytest.raises(InputError, match="nope.json"):
        summarise_ablation(spec)
