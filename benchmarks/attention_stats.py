"""Attention and pseudo-label statistics of trained runs: the diagnostics an ablation needs
when an arm cannot be separated from its baseline.

For each run folder (a workflow run, results/runs/{dataset}/{mllm}/{experiment}/seed{n}/)
it loads the final checkpoint, runs inference on the TRAINING videos (never the test split:
these numbers describe what the pseudo-labels were built from) and prints

- fg: the true foreground fraction of the snippets (the generated ground truth);
- att>=0.5: the fraction of snippets whose base attention is >= 0.5 (the localization
  head's pseudo-label threshold), and the attention's AUC for foreground vs background;
- head>=0.5 / head_auc: the same for the localization head's best labelled-class probability,
  when there is one, and ``head_ece``: its expected calibration error against the truth (10
  equal-width bins of the probability; the gap between the mean probability and the share of
  foreground snippets in each bin, weighted by the bin's size);
- csr_auc: A_CSR's AUC (CSR's own attention, read from the run's resume.pt, which keeps every
  trained module; training-only, so the checkpoint has none);
- loc_pseudo_share / loc_pseudo_precision / loc_pseudo_recall / csr_loss / ksm_loss: the last
  row of the run's metrics.csv (the head's pseudo-labels against the annotated training videos);
- for candidate pseudo-label rules on the base attention (``fixed``: >= 0.5, the paper's
  and this project's rule; ``video_mean``: >= the video's mean attention; ``video_midrange``:
  >= halfway between the video's lowest and highest attention; none has a parameter fitted to
  any data), the fraction of snippets each marks foreground and its precision, recall and F1
  against the true foreground.  The head's training targets average the base attention with
  the plug-ins' attentions; only the base attention exists after training, so these rules are
  scored on it alone.

A method that resamples its input at test time (UM sees at most ``max_seqlen`` snippets)
is scored on the snippets it saw: snippet ``(i * length) // n`` for its output i, as the
engine feeds them.

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
from wtal_training.data import load_data
from wtal_training.inference import infer
from wtal_training.mllm4wtal.common import ConvAttention
from wtal_training.seed_run import RESUME_FILE
from wtal_training.trained_model import load_trained_model


def foreground_mask(entry: dict, length: int, snippet_seconds: float) -> np.ndarray:
    """Per-snippet 0/1: the snippet centre lies inside a ground-truth segment."""
    centres = (np.arange(length) + 0.5) * snippet_seconds
    mask = np.zeros(length, dtype=bool)
    for ann in entry.get("annotations", []):
        start, end = ann["segment"]
        mask |= (centres >= start) & (centres <= end)
    return mask


def seen_foreground(entry: dict, seen: int, length: int, snippet_seconds: float) -> np.ndarray:
    """Foreground of the ``seen`` snippets the network got from a ``length``-snippet video."""
    picked = np.minimum((np.arange(seen) * length) // max(seen, 1), length - 1)
    return foreground_mask(entry, length, snippet_seconds)[picked]


PSEUDO_LABEL_RULES = {
    "fixed": lambda a: a >= 0.5,
    "video_mean": lambda a: a >= a.mean(),
    "video_midrange": lambda a: a >= (a.min() + a.max()) / 2,
}


def rule_scores(marked: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Share of snippets marked, and precision / recall / F1 of the marks against ``truth``."""
    hits = float((marked & truth).sum())
    precision = hits / marked.sum() if marked.any() else float("nan")
    recall = hits / truth.sum() if truth.any() else float("nan")
    f1 = 2 * hits / (marked.sum() + truth.sum()) if (marked.any() or truth.any()) else float("nan")
    return {"share": float(marked.mean()), "precision": precision, "recall": recall, "f1": f1}


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


def calibration_error(probability: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of |mean probability - share of
    positives| x the bin's share of the snippets."""
    edges = np.minimum((probability * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = edges == b
        if sel.any():
            total += abs(float(probability[sel].mean()) - float(truth[sel].mean())) * sel.mean()
    return total


def csr_attention(run: Path) -> ConvAttention | None:
    """A_CSR's head as trained, from the run's resume state (None without CSR)."""
    path = run / RESUME_FILE
    if not path.exists():
        return None
    modules = torch.load(path, map_location="cpu", weights_only=True)["modules"]
    if "csr" not in modules:
        return None
    state = {k[len("attention.") :]: v for k, v in modules["csr"].items() if k.startswith("attention.")}
    hidden, dim = state["net.0.weight"].shape[:2]
    head = ConvAttention(dim, hidden=hidden)
    head.load_state_dict(state)
    return head.eval()


def last_metrics(run: Path) -> dict[str, float]:
    path = run / "metrics.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open()))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", None)} if rows else {}


def run_stats(run: Path, data_dir: Path, subset: str = "train") -> dict[str, float]:
    """The figures above on the ``subset`` videos of ``data_dir`` (train: what the pseudo-labels
    were built from; a held-out view's test split: training videos the run never saw)."""
    trained = load_trained_model(run / "checkpoint.safetensors", "cpu")
    data = load_data(data_dir, "cpu")
    gt = load_ground_truth(data_dir)
    videos = data.train if subset == "train" else data.test
    outputs = infer(trained.model, videos)
    classes = list(gt["classes"])
    a_csr = csr_attention(run)
    attention, head, head_truth, labels, csr = [], [], [], [], []
    marks: dict[str, list[np.ndarray]] = {name: [] for name in PSEUDO_LABEL_RULES}
    for video, out in outputs.items():
        seen = len(out["attention"])
        length = int(out.get("video_length", seen))
        labels.append(seen_foreground(gt["database"][video], seen, length, gt["snippet_seconds"]))
        attention.append(np.asarray(out["attention"]).reshape(-1))
        for name, rule in PSEUDO_LABEL_RULES.items():
            marks[name].append(rule(attention[-1]))
        if "loc_scores" in out:
            own = [classes.index(c) for c in gt["database"][video]["labels"]]
            head.append(np.asarray(out["loc_scores"])[:, own].max(axis=-1).reshape(-1))
            head_truth.append(labels[-1])
        if a_csr is not None and seen == length:
            i = videos.video_ids.index(video)
            feats = videos.video(i).unsqueeze(0)
            with torch.no_grad():
                csr.append(a_csr(feats, torch.ones(feats.shape[:2], dtype=torch.bool))[0].numpy())
    labels_all, attention_all = np.concatenate(labels), np.concatenate(attention)
    stats = {
        "fg": float(labels_all.mean()),
        "att>=0.5": float((attention_all >= 0.5).mean()),
        "att_auc": auc(attention_all, labels_all),
    }
    for name, marked in marks.items():
        for key, value in rule_scores(np.concatenate(marked), labels_all).items():
            stats[f"{name}_{key}"] = value
    if head:
        head_all, truth_all = np.concatenate(head), np.concatenate(head_truth)
        stats.update(
            {
                "head>=0.5": float((head_all >= 0.5).mean()),
                "head_auc": auc(head_all, truth_all),
                "head_ece": calibration_error(head_all, truth_all),
            }
        )
    if csr:
        stats["csr_auc"] = auc(np.concatenate(csr), labels_all)
    metrics = last_metrics(run)
    for key in ("loc_pseudo_share", "loc_pseudo_precision", "loc_pseudo_recall", "csr_loss", "ksm_loss"):
        if key in metrics:
            stats[key] = metrics[key]
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with checkpoint.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="canonical folder (default: from run.json)")
    parser.add_argument("--subset", default="train", choices=["train", "test"], help="whose videos (default train)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = {}
    for run in args.runs:
        data_dir = args.data or Path("data") / json.loads((run / "run.json").read_text())["dataset"] / "canonical"
        table[str(run)] = run_stats(run, data_dir, args.subset)
        cells = ", ".join(f"{k} {v:.3f}" for k, v in table[str(run)].items())
        print(f"{run}: {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
