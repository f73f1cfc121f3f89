"""Ablation tables from per-seed evaluations: each arm's mean and sample std over seeds, and
its paired difference from a reference arm with a 95% paired t interval.

Why paired: two arms trained with the same seed share the data order, the initial weights
of the base method and the MLLM4WTAL masks, so the per-seed difference removes much of the
seed-to-seed spread that dominates small studies.

The interval is the paired t interval of the mean difference over the n common seeds:
mean +- t(0.975, n - 1) * sd / sqrt(n), sd the sample standard deviation (n - 1) of the
per-seed differences.  It is valid at small n when the differences are roughly normal; a
percentile bootstrap (the method before 2026-12-08) is not: over n paired differences it
cannot be wider than their range (with 2 seeds it is exactly their min and max), so it was
too narrow.  With fewer than :data:`MIN_SEEDS_FOR_INTERVAL` paired seeds no interval is
given (t(0.975, 1) = 12.7: two seeds bound nothing useful; the table says why).  An
interval that covers 0 means "not separated from the reference at this scale", not "no
effect".

Input: the ``eval_map.json`` files ``python -m evaluation`` writes (keys ``mAP``: tIoU ->
mAP, ``average_mAP``: "low:high" -> mAP, ``per_class``).  Values stay fractions in the JSON
(as the evaluation output); the Markdown table shows percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.errors import InputError
from wtal_common.stats import mean_and_std

CONFIDENCE = 0.95
MIN_SEEDS_FOR_INTERVAL = 3
INTERVAL_METHOD = "paired t"
SCHEMA_VERSION = 2  # 2: paired t interval (ci95 null under 3 seeds, interval_note); 1: percentile bootstrap

# t(0.975, df), the two-sided 95% quantile of Student's t, for df = 1..30 (index df - 1), to
# 4 decimals as in printed tables (and checked in tests/test_ablation.py against a numerical
# integration of the t density).  No scipy: the project does not depend on it.
T_975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
Z_975 = 1.959963984540054  # the standard normal's 0.975 quantile


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table for df <= 30; beyond it the normal quantile with the
    Cornish-Fisher expansion in 1/df to the third order (Abramowitz & Stegun 26.7.5), which is
    within 1e-4 of the exact value from df 31 on (2.0395 at 31, 1.9600 in the limit)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def paired_t_interval(differences: Sequence[float]) -> tuple[float, float] | None:
    """95% paired t interval of the mean of ``differences`` (one value per seed):
    mean +- t(0.975, n - 1) * sd / sqrt(n); None under :data:`MIN_SEEDS_FOR_INTERVAL` values."""
    values = [float(v) for v in differences]
    n = len(values)
    if n == 0:
        raise ValueError("no paired seeds")
    if n < MIN_SEEDS_FOR_INTERVAL:
        return None
    mean, sd = mean_and_std(values)
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def interval_note(n: int) -> str | None:
    """Why a difference over ``n`` seeds has no interval (None when it has one)."""
    if n >= MIN_SEEDS_FOR_INTERVAL:
        return None
    return f"n/a ({n} seed{'s' if n != 1 else ''}: an interval needs >= {MIN_SEEDS_FOR_INTERVAL})"


def paired_difference(arm: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, Any]:
    """``arm - reference`` per seed both have: their mean, sample std and 95% paired t interval.

    ``ci95`` is None, and ``interval_note`` says why, under 3 common seeds; ``separated``
    (the interval excludes 0) is then None too: no claim either way."""
    seeds = [s for s in arm if s in reference]
    if not seeds:
        raise InputError(f"no seed in common (arm seeds {sorted(arm)}, reference seeds {sorted(reference)})")
    per_seed = {s: float(arm[s]) - float(reference[s]) for s in seeds}
    mean, sd = mean_and_std(list(per_seed.values()))
    interval = paired_t_interval(list(per_seed.values()))
    return {
        "seeds": seeds,
        "per_seed": per_seed,
        "mean": mean,
        "sd": sd,
        "interval": INTERVAL_METHOD,
        "ci95": None if interval is None else list(interval),
        "interval_note": interval_note(len(seeds)),
        "separated": None if interval is None else (interval[0] > 0 or interval[1] < 0),
    }


def format_difference(d: Mapping[str, Any]) -> str:
    """One paired difference in points of mAP: ``-1.5 [-2.1, -0.9]*`` (* = the interval
    excludes 0), or ``+6.9 n/a (2 seeds: an interval needs >= 3)``."""
    if d.get("ci95") is None:
        return f"{100 * d['mean']:+.1f} {d.get('interval_note') or interval_note(len(d['seeds']))}"
    star = "*" if d["separated"] else ""
    return f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]{star}"


def read_evaluation(path: str | Path) -> dict[str, Any]:
    """One seed's ``eval_map.json``; a missing or malformed file is an InputError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the evaluation output ({exc})") from exc
    missing = [key for key in ("mAP", "average_mAP") if not isinstance(data.get(key), dict)]
    if missing:
        raise InputError(f"{path}: no {' / '.join(missing)} mapping (the keys `python -m evaluation` writes)")
    return data


def _metric_values(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """Flat metric name -> value: "mAP@0.5", "avg 0.1:0.7", ..."""
    values = {f"mAP@{k}": float(v) for k, v in evaluation["mAP"].items()}
    values.update({f"avg {k}": float(v) for k, v in evaluation["average_mAP"].items()})
    return values


def _train_seconds(runs: Mapping[str, str]) -> float | None:
    seconds = []
    for path in runs.values():
        try:
            seconds.append(float(json.loads(Path(path).read_text())["train_seconds"]))
        except (OSError, KeyError, ValueError):
            return None
    return sum(seconds) if seconds else None


def summarise_ablation(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The study's summary from ``spec`` (what the workflow's ablation rule passes).

    ``spec``: study, dataset, synthetic, mllm and ``arms``, each with ``name``,
    ``experiment``, ``reference`` (another arm's experiment, or None), ``maps`` (seed ->
    eval_map.json path) and optionally ``runs`` (seed -> run.json, for training seconds).
    """
    arms_by_experiment: dict[str, dict[str, Any]] = {}
    for arm in spec["arms"]:
        evaluations = {seed: read_evaluation(path) for seed, path in arm["maps"].items()}
        per_seed = {seed: _metric_values(evaluation) for seed, evaluation in evaluations.items()}
        metrics = list(next(iter(per_seed.values())))
        summary = {}
        for metric in metrics:
            values = [per_seed[s][metric] for s in per_seed]
            mean, std = mean_and_std(values)
            summary[metric] = {"mean": mean, "std": std, "per_seed": {s: per_seed[s][metric] for s in per_seed}}
        per_class = _mean_per_class(list(evaluations.values()))
        arms_by_experiment[arm["experiment"]] = {
            **{
                k: arm.get(k)
                for k in ("name", "experiment", "run", "reference", "description", "inference", "training")
            },
            "seeds": list(per_seed),
            "metrics": summary,
            "per_class_ap_mean": per_class,
            "train_seconds": _train_seconds(arm.get("runs") or {}),
        }
    for arm in arms_by_experiment.values():
        if arm["reference"] is None:
            continue
        reference = arms_by_experiment[arm["reference"]]
        arm["paired_difference"] = {
            metric: paired_difference(arm["metrics"][metric]["per_seed"], reference["metrics"][metric]["per_seed"])
            for metric in arm["metrics"]
            if metric in reference["metrics"]
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "study": spec["study"],
        "dataset": spec["dataset"],
        "synthetic": bool(spec["synthetic"]),
        "mllm": spec["mllm"],
        "protocol": "final checkpoint of every run, evaluated once on the test split; mean and sample std "
        f"over seeds; paired differences per common seed with a {int(CONFIDENCE * 100)}% paired t interval "
        f"(mean +- t(0.975, n-1) sd/sqrt(n); none under {MIN_SEEDS_FOR_INTERVAL} seeds)",
        "arms": list(arms_by_experiment.values()),
    }


def _mean_per_class(evaluations: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per class, the mean over seeds of its AP at each tIoU (a diagnostic of which classes move)."""
    tables = [e.get("per_class") or {} for e in evaluations]
    if not all(tables):
        return {}
    return {
        cls: {k: float(np.mean([t[cls][k] for t in tables])) for k in tables[0][cls]}
        for cls in tables[0]
        if all(cls in t for t in tables)
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_tables(summary: Mapping[str, Any]) -> str:
    """Two Markdown tables (percent): mean ± std per arm, and the paired differences."""
    arms = summary["arms"]
    metrics = list(arms[0]["metrics"])
    note = " (GENERATED data, not a real data set)" if summary["synthetic"] else ""
    lines = [
        f"## Ablation `{summary['study']}`: data set {summary['dataset']}{note}, MLLM {summary['mllm']}",
        "",
        "mAP in %, mean ± sample std over seeds, final checkpoints.",
        "",
        "| arm | seeds | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for arm in arms:
        cells = [f"{_pct(arm['metrics'][m]['mean'])} ± {_pct(arm['metrics'][m]['std'])}" for m in metrics]
        lines.append(f"| {arm['name']} | {len(arm['seeds'])} | " + " | ".join(cells) + " |")
    paired = [arm for arm in arms if arm.get("paired_difference")]
    if paired:
        shown = [m for m in metrics if m.startswith("avg")] + ["mAP@0.5"]
        shown = [m for m in shown if m in metrics]
        lines += [
            "",
            "Paired difference from the reference (same seeds), points of mAP: mean [95% paired t interval, "
            "mean ± t(0.975, n-1)·sd/√n of the per-seed differences]; * = the interval excludes 0; "
            f"n/a = fewer than {MIN_SEEDS_FOR_INTERVAL} paired seeds (no interval).",
            "",
            "| arm | reference | seeds | " + " | ".join(shown) + " |",
            "|---|---|---|" + "---|" * len(shown),
        ]
        names = {arm["experiment"]: arm["name"] for arm in arms}
        for arm in paired:
            cells = []
            for m in shown:
                cells.append(format_difference(arm["paired_difference"][m]))
            seeds = len(arm["paired_difference"][shown[0]]["seeds"])
            lines.append(f"| {arm['name']} | {names[arm['reference']]} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
