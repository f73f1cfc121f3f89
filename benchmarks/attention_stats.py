"""Attention and pseudo-label statistics of trained runs: the diagnostics an ablation needs
when an arm cannot be separated from its baseline.

For each run folder (a workflow run, results/runs/{dataset}/{mllm}/{experiment}/seed{n}/)
it loads the final checkpoint, runs inference on the TRAINING videos (never the test split:
these numbers describe what the pseudo-labels were built from) and prints

- fg: the true foreground fraction of the snippets (the generated ground truth);
- att>=0.5: the fraction of snippets whose base attention is >= 0.5 (the localization
  head's pseudo-label threshold), and the attention's AUC for foreground vs background;
- head>=0.5: the same for the localization head's best-class score, when there is one;
- loc_positive_fraction / csr_loss / ksm_loss: the last row of the run's metrics.csv.

Example::

    python benchmarks/attention_stats.py results/runs/thumos14-vd/synthetic/delu-*/seed0
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from wtal_data.canonical import load_ground_truth
from wtal_training.engine import infer, load_data
from wtal_training.trained_model import load_trained_model


def foreground_mask(entry: dict, length: int, snippet_seconds: float) -> np.ndarray:
    """Per-snippet 0/1: the snippet centre lies inside a ground-truth segment."""
    centres = (np.arange(length) + 0.5) * snippet_seconds
    mask = np.zeros(length, dtype=bool)
    for ann in entry.get("annotations", []):
        start, end = ann["segment"]
        mask |= (centres >= start) & (centres <= end)
    return mask


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def last_metrics(run: Path) -> dict[str, float]:
    path = run / "metrics.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open()))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", None)} if rows else {}


def run_stats(run: Path, data_dir: Path) -> dict[str, float]:
    trained = load_trained_model(run / "checkpoint.safetensors", "cpu")
    data = load_data(data_dir, "cpu")
    gt = load_ground_truth(data_dir)
    outputs = infer(trained.model, data.train)
    attention, head, labels = [], [], []
    for video, out in outputs.items():
        length = len(out["attention"])
        labels.append(foreground_mask(gt["database"][video], length, gt["snippet_seconds"]))
        attention.append(np.asarray(out["attention"]).reshape(-1))
        if "loc_scores" in out:
            head.append(np.asarray(out["loc_scores"]).max(axis=-1).reshape(-1))
    labels_all, attention_all = np.concatenate(labels), np.concatenate(attention)
    stats = {
        "fg": float(labels_all.mean()),
        "att>=0.5": float((attention_all >= 0.5).mean()),
        "att_auc": auc(attention_all, labels_all),
    }
    if head:
        head_all = np.concatenate(head)
        stats.update({"head>=0.5": float((head_all >= 0.5).mean()), "head_auc": auc(head_all, labels_all)})
    metrics = last_metrics(run)
    for key in ("loc_positive_fraction", "csr_loss", "ksm_loss"):
        if key in metrics:
            stats[key] = metrics[key]
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with checkpoint.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="canonical folder (default: from run.json)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = {}
    for run in args.runs:
        data_dir = args.data or Path("data") / json.loads((run / "run.json").read_text())["dataset"] / "canonical"
        table[str(run)] = run_stats(run, data_dir)
        cells = ", ".join(f"{k} {v:.3f}" for k, v in table[str(run)].items())
        print(f"{run}: {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
