"""Ablation tables from per-seed evaluations: each arm's mean and sample std over seeds, and
its paired difference from a reference arm with a 95% bootstrap confidence interval.

Why paired: two arms trained with the same seed share the data order, the initial weights
of the base method and the MLLM4WTAL masks, so the per-seed difference removes much of the
seed-to-seed spread that dominates small studies.  The interval is a percentile bootstrap of
the mean difference over seeds (10,000 resamples of the seeds with replacement, a fixed
generator seed so the table is reproducible).  With 3-5 seeds it is coarse: an interval
that covers 0 means "not separated from the reference at this scale", not "no effect".

Input: the ``eval_map.json`` files ``python -m evaluation`` writes (keys ``mAP``: tIoU ->
mAP, ``average_mAP``: "low:high" -> mAP, ``per_class``).  Values stay fractions in the JSON
(as the evaluation output); the Markdown table shows percent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wtal_common.errors import InputError
from wtal_common.stats import mean_and_std

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
SCHEMA_VERSION = 1


def bootstrap_interval(
    differences: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (one value per seed)."""
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no paired seeds")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(arm: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, Any]:
    """``arm - reference`` per seed both have, their mean and its bootstrap interval."""
    seeds = [s for s in arm if s in reference]
    if not seeds:
        raise InputError(f"no seed in common (arm seeds {sorted(arm)}, reference seeds {sorted(reference)})")
    per_seed = {s: float(arm[s]) - float(reference[s]) for s in seeds}
    low, high = bootstrap_interval(list(per_seed.values()))
    mean = float(np.mean(list(per_seed.values())))
    return {"seeds": seeds, "per_seed": per_seed, "mean": mean, "ci95": [low, high], "separated": low > 0 or high < 0}


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
            **{k: arm.get(k) for k in ("name", "experiment", "reference", "description", "inference", "training")},
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
        f"over seeds; paired differences per common seed with a {int(CONFIDENCE * 100)}% percentile "
        f"bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples)",
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
            "Paired difference from the reference (same seeds), mean [95% bootstrap CI], points of mAP; "
            "* = the interval excludes 0.",
            "",
            "| arm | reference | seeds | " + " | ".join(shown) + " |",
            "|---|---|---|" + "---|" * len(shown),
        ]
        names = {arm["experiment"]: arm["name"] for arm in arms}
        for arm in paired:
            cells = []
            for m in shown:
                d = arm["paired_difference"][m]
                star = "*" if d["separated"] else ""
                cells.append(f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]{star}")
            seeds = len(arm["paired_difference"][shown[0]]["seeds"])
            lines.append(f"| {arm['name']} | {names[arm['reference']]} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
