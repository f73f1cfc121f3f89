"""The ablation tables (evaluation.ablation): per-arm mean and sample std over seeds, paired
differences from the reference arm over the seeds both have, and a 95% paired t interval
(none under 3 seeds); values hand-computed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evaluation.ablation import (
    format_difference,
    markdown_tables,
    paired_difference,
    paired_t_interval,
    summarise_ablation,
    t_quantile_975,
)
from wtal_common.errors import InputError


def _t_cdf_upper_half(q: float, df: int, points: int = 200_001) -> float:
    """P(0 < T < q) for Student's t with ``df`` degrees of freedom: Simpson's rule on its density."""
    x = np.linspace(0.0, q, points)
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    f = norm * (1 + x * x / df) ** (-(df + 1) / 2)
    h = q / (points - 1)
    return h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())


@pytest.mark.parametrize(
    "df, expected",
    # printed tables (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2), 3 decimals
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (30, 2.042)]
    + [(40, 2.021), (60, 2.000), (100, 1.984), (120, 1.980), (10**6, 1.960)],
)
def test_t_quantile_matches_known_values(df, expected):
    assert t_quantile_975(df) == pytest.approx(expected, abs=6e-4)


@pytest.mark.parametrize("df", [*range(1, 36), 40, 50, 80, 200])
def test_t_quantile_is_the_975_point_of_the_t_density(df):
    """Independent of any table: the t density integrates to 0.475 between 0 and the quantile
    (the table's 4 decimals and the expansion beyond df 30 are within 1e-4 of it)."""
    q = t_quantile_975(df)
    assert 0.5 + _t_cdf_upper_half(q, df) == pytest.approx(0.975, abs=5e-6 if df > 2 else 1e-5)
    assert _t_cdf_upper_half(q + 1e-4, df) > 0.475 > _t_cdf_upper_half(q - 1e-4, df)


def test_t_quantile_refuses_zero_degrees_of_freedom():
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_paired_t_interval_by_hand():
    """Differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027, half-width 4.3027 / sqrt(3) = 2.4842 (the 2.484 of a printed t table)."""
    low, high = paired_t_interval([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx((2 - 2.484165, 2 + 2.484165), abs=1e-6)
    # five differences 0, 1, 2, 3, 4: mean 2, sd sqrt(2.5) = 1.5811, t(0.975, 4) = 2.7764,
    # half-width 2.7764 * 1.5811 / sqrt(5) = 1.96321
    assert paired_t_interval([0, 1, 2, 3, 4]) == pytest.approx((2 - 1.963211, 2 + 1.963211), abs=1e-6)
    assert paired_t_interval([0.02, 0.02, 0.02]) == pytest.approx((0.02, 0.02))  # no spread, no width


def test_no_interval_under_three_seeds():
    """Two paired seeds: no interval (the old percentile bootstrap gave their min and max)."""
    assert paired_t_interval([-0.039, -0.026]) is None
    d = paired_difference({"0": 0.10, "1": 0.20}, {"0": 0.139, "1": 0.226})
    assert d["ci95"] is None and d["separated"] is None
    assert d["interval_note"] == "n/a (2 seeds: an interval needs >= 3)"
    assert format_difference(d) == "-3.2 n/a (2 seeds: an interval needs >= 3)"
    one = paired_difference({"0": 0.1}, {"0": 0.2})
    assert one["interval_note"] == "n/a (1 seed: an interval needs >= 3)" and one["sd"] == 0.0


def test_paired_difference_by_hand():
    """Seeds 0-2 are shared (seed 3 of the reference has no partner): differences 0.10,
    0.00, 0.10: mean 0.0667, sd 0.0577, half-width 4.3027 * 0.0577 / sqrt(3) = 0.1434, so
    the interval [-0.0768, +0.2101] covers 0: not separated."""
    arm = {"0": 0.30, "1": 0.25, "2": 0.20}
    reference = {"0": 0.20, "1": 0.25, "2": 0.10, "3": 0.50}
    d = paired_difference(arm, reference)
    assert d["seeds"] == ["0", "1", "2"]
    assert d["per_seed"] == pytest.approx({"0": 0.10, "1": 0.0, "2": 0.10})
    assert d["mean"] == pytest.approx(0.2 / 3)
    assert d["sd"] == pytest.approx(0.1 / math.sqrt(3))
    assert d["interval"] == "paired t" and d["interval_note"] is None
    assert d["ci95"] == pytest.approx([0.2 / 3 - 0.143423, 0.2 / 3 + 0.143423], abs=1e-6)
    assert d["separated"] is False
    flipped = paired_difference(reference, arm)  # the order is arm - reference
    assert flipped["mean"] == pytest.approx(-0.2 / 3)
    assert flipped["ci95"] == pytest.approx([-0.2 / 3 - 0.143423, -0.2 / 3 + 0.143423], abs=1e-6)
    separated = paired_difference({"0": 0.11, "1": 0.12, "2": 0.13}, {"0": 0.10, "1": 0.10, "2": 0.10})
    assert separated["ci95"] == pytest.approx([0.02 - 0.0248417, 0.02 + 0.0248417], abs=1e-6)
    assert separated["separated"] is False  # [-0.005, +0.045]: differences 1, 2, 3 points
    clear = paired_difference({"0": 0.15, "1": 0.16, "2": 0.17}, {"0": 0.10, "1": 0.10, "2": 0.10})
    assert clear["separated"] is True and format_difference(clear) == "+6.0 [+3.5, +8.5]*"


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
    assert plugin["paired_difference"]["avg 0.1:0.7"]["ci95"] is None  # two seeds: no interval
    table = markdown_tables(summary)
    assert "GENERATED data" in table and "95% paired t interval" in table
    assert "| full | baseline | 2 | +8.5 n/a (2 seeds: an interval needs >= 3) | +7.5 n/a (2 seeds" in table


def test_summary_with_three_seeds_has_t_intervals(tmp_path):
    """avg differences 1, 2, 3 points -> +2.0 [-0.5, +4.5]: the hand-computed interval above."""
    base = {s: _write_map(tmp_path / f"b{s}.json", 0.10, 0.10) for s in "012"}
    full = {s: _write_map(tmp_path / f"f{s}.json", 0.10, 0.10 + d) for s, d in zip("012", (0.01, 0.02, 0.03))}
    spec = {
        "study": "s",
        "dataset": "gen",
        "synthetic": True,
        "mllm": "m",
        "arms": [
            {"name": "baseline", "experiment": "b", "reference": None, "maps": base},
            {"name": "full", "experiment": "f", "reference": "b", "maps": full},
        ],
    }
    summary = summarise_ablation(spec)
    assert summary["schema_version"] == 2 and "paired t interval" in summary["protocol"]
    d = summary["arms"][1]["paired_difference"]["avg 0.1:0.7"]
    assert d["ci95"] == pytest.approx([0.02 - 0.0248417, 0.02 + 0.0248417], abs=1e-6)
    assert "| full | baseline | 3 | +2.0 [-0.5, +4.5] | +0.0 [+0.0, +0.0] |" in markdown_tables(summary)


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
