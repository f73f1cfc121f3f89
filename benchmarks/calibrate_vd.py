"""Calibrate a generated benchmark on its TRAINING videos only: held-out views and their figures.

A generated set is calibrated (its generator settings and the study's schedule chosen) on
training videos alone; the test split is looked at once, at the end.  This script makes
that possible with the project's own CLIs:

``views``  writes two canonical data sets next to each other, from one canonical folder:

* ``heldout/``: the training videos minus a seeded, class-covering fraction as ``train``;
  the held-out training videos as ``test``.  Training on it and scoring its ``test`` split
  is a train / validation experiment that never reads the real test split.
* ``fit/``: the same held-out videos as ``train`` (only so the split is not empty) and the
  remaining training videos as ``test``: scoring a ``heldout`` checkpoint on it gives the
  training-split figure, so train minus held-out is the generalisation gap.

``run``    trains DELU (or another method) on ``heldout`` for some seeds, in parallel
single-thread processes, then for each seed prints the held-out avg mAP, the training-split
avg mAP, and the base attention's foreground-vs-background AUC on the training videos
(``benchmarks/attention_stats.py``), with mean and sample std over seeds.

The figure is the average mAP over the data set's own tIoU range: the one its family's
training defaults score (``wtal_training/configs/defaults.yaml``: THUMOS14 0.1:0.7,
ActivityNet 0.5:0.95; the views keep the set's ``family``), or ``--tiou-range``.

Example (calibration 2 of ``thumos14-vd``, docs/synthetic-benchmark.md)::

    python benchmarks/calibrate_vd.py views --data data/thumos14-vd/canonical --output /tmp/cal
    python benchmarks/calibrate_vd.py run --views /tmp/cal --output /tmp/cal/runs/delu \\
        --config config/demo_training.yaml --iterations 1000 --seeds 0 1 2 --jobs 2

``activitynet12-vd`` (100 classes, ~10 training videos each: a random fifth would leave
classes out of the held-out side, so ``--split per-class`` holds out a fifth of each class)::

    python benchmarks/calibrate_vd.py views --data data/activitynet12-vd/canonical --output /tmp/cal-anet \\
        --split per-class
    python benchmarks/calibrate_vd.py run --views /tmp/cal-anet --output /tmp/cal-anet/runs/delu \\
        --config config/demo_training.yaml --set data.max_seqlen=60 --iterations 4000 --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from wtal_common.stats import mean_and_std
from wtal_data.canonical import FeatureStore, dataset_family, load_ground_truth, write_features, write_ground_truth

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_stats import run_stats  # noqa: E402  (a sibling benchmark script)


def headline_range(data: Path) -> str:
    """``low:high`` of the tIoU thresholds the set's family scores by default (its headline
    average: THUMOS14 0.1:0.7, ActivityNet 0.5:0.95), from the canonical folder's family."""
    from wtal_training.config import default_config

    gt = load_ground_truth(data)
    thresholds = default_config(family=dataset_family(gt, str(data))).test.tiou_thresholds
    return f"{min(thresholds):g}:{max(thresholds):g}"


def _split_ok(gt: dict, kept_ids: list[str], out_ids: list[str]) -> bool:
    """Every class keeps two training videos (same-class pairs) and is among the held-out ones."""
    kept_counts = {c: 0 for c in gt["classes"]}
    out_classes = set()
    for v in kept_ids:
        for c in gt["database"][v].get("labels", []):
            kept_counts[c] += 1
    for v in out_ids:
        out_classes |= set(gt["database"][v].get("labels", []))
    return min(kept_counts.values()) >= 2 and out_classes == set(gt["classes"])


def holdout_split(gt: dict, fraction: float, seed: int, per_class: bool = False) -> tuple[list[str], list[str]]:
    """(kept, held_out) training video ids: a seeded random ``fraction`` held out, redrawn
    until every class keeps at least two training videos (same-class pairs) and appears
    among the held-out videos (every class is scored).

    ``per_class``: hold out ``fraction`` of each class's videos instead (at least one, class by
    class in the ground truth's order; a multi-label video held out for one class counts for
    both).  With many classes of few videos each (ActivityNet-shaped sets: 100 x 10) a random
    draw practically never holds out every class."""
    train = sorted(v for v, e in gt["database"].items() if e["subset"] == "train")
    rng = np.random.default_rng(seed)
    if per_class:
        held: set[str] = set()
        for c in gt["classes"]:
            videos = [v for v in train if c in gt["database"][v].get("labels", [])]
            need = max(1, round(fraction * len(videos))) - sum(v in held for v in videos)
            free = [v for v in videos if v not in held]
            held |= {free[i] for i in rng.permutation(len(free))[: max(0, need)].tolist()}
        kept_ids, out_ids = [v for v in train if v not in held], [v for v in train if v in held]
        if _split_ok(gt, kept_ids, out_ids):
            return kept_ids, out_ids
        raise SystemExit(f"a per-class split of {fraction} leaves a class with fewer than 2 training videos")
    n_out = max(1, round(fraction * len(train)))
    for _ in range(1000):
        chosen = set(rng.choice(len(train), n_out, replace=False).tolist())
        kept_ids = [v for i, v in enumerate(train) if i not in chosen]
        out_ids = [v for i, v in enumerate(train) if i in chosen]
        if _split_ok(gt, kept_ids, out_ids):
            return kept_ids, out_ids
    raise SystemExit(f"no held-out split of {fraction} keeps every class on both sides (try --split per-class)")


def write_view(source: Path, output: Path, train_ids: list[str], test_ids: list[str], name: str) -> None:
    """A canonical data set with ``train_ids`` as train and ``test_ids`` as test (features copied)."""
    gt = load_ground_truth(source)
    store = FeatureStore.open(source)
    view = dict(gt)
    view["dataset"] = f"{gt['dataset']}-{name}"
    view["source"] = f"{name} view of {source} (training videos only; benchmarks/calibrate_vd.py)"
    view["database"] = {
        **{v: {**gt["database"][v], "subset": "train"} for v in train_ids},
        **{v: {**gt["database"][v], "subset": "test"} for v in test_ids},
    }
    view["ambiguous"] = {}
    write_features(output, {v: store[v] for v in train_ids + test_ids}, source=f"{name} view")
    write_ground_truth(output, view)


def cmd_views(args: argparse.Namespace) -> int:
    gt = load_ground_truth(args.data)
    kept, held = holdout_split(gt, args.fraction, args.seed, per_class=args.split == "per-class")
    write_view(args.data, args.output / "heldout", kept, held, "heldout")
    write_view(args.data, args.output / "fit", held, kept, "fit")
    print(json.dumps({"train": len(kept), "heldout": len(held), "output": str(args.output)}))
    return 0


def _average(map_json: Path, tiou_range: str) -> float:
    averages = json.loads(map_json.read_text())["average_mAP"]
    if tiou_range not in averages:
        raise SystemExit(f"{map_json}: no average over {tiou_range} (has {sorted(averages)}); see --tiou-range")
    return float(averages[tiou_range])


def _train_one(args: argparse.Namespace, seed: int) -> dict[str, float]:
    out = args.output / f"seed{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    train = [sys.executable, "-m", "wtal_training", "train", "--data", str(args.views / "heldout")]
    train += ["--method", args.method, "--iterations", str(args.iterations), "--device", "cpu"]
    train += ["--seeds", str(seed), "--output-dir", str(args.output), "--no-progress"]
    if args.config:
        train += ["--config", str(args.config)]
    for item in args.set:
        train += ["--set", item]
    if args.modules:
        train += ["--modules", *args.modules, "--text-priors", str(args.text_priors)]
    if not (out / "map.json").exists():
        subprocess.run(train, check=True, env=env, stdout=subprocess.DEVNULL)
    fit = out / "fit"
    if not (fit / "map.json").exists():
        evaluate = [sys.executable, "-m", "wtal_training", "evaluate", "--data", str(args.views / "fit")]
        evaluate += ["--checkpoint", str(out / "checkpoint.safetensors"), "--output-dir", str(fit), "--device", "cpu"]
        subprocess.run(evaluate, check=True, env=env, stdout=subprocess.DEVNULL)
    stats = run_stats(out, args.views / "heldout")
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    return {
        "heldout": _average(out / "map.json", args.tiou_range),
        "train": _average(fit / "map.json", args.tiou_range),
        "att_auc": stats["att_auc"],
        "att>=0.5": stats["att>=0.5"],
        "train_seconds": float(run.get("train_seconds", float("nan"))),
    }


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    args.tiou_range = args.tiou_range or headline_range(args.views / "heldout")
    print(f"average mAP over tIoU {args.tiou_range}")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        figures = dict(zip(args.seeds, pool.map(lambda s: _train_one(args, s), args.seeds)))
    for seed, row in figures.items():
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    keys = next(iter(figures.values())).keys()
    summary = {k: mean_and_std([row[k] for row in figures.values()]) for k in keys}
    print("mean ± std: " + ", ".join(f"{k} {m:.3f} ± {s:.3f}" for k, (m, s) in summary.items()))
    record = {"tiou_range": args.tiou_range, "seeds": figures, "summary": summary}
    (args.output / "calibration.json").write_text(json.dumps(record, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    views = sub.add_parser("views", help="write the heldout/ and fit/ views of a canonical set")
    views.add_argument("--data", type=Path, required=True, help="canonical folder of the generated set")
    views.add_argument("--output", type=Path, required=True)
    views.add_argument("--fraction", type=float, default=0.2, help="share of training videos held out")
    views.add_argument("--seed", type=int, default=0)
    views.add_argument(
        "--split",
        choices=("random", "per-class"),
        default="random",
        help="random: a fraction of all training videos (thumos14-vd's calibration); per-class: of each class's",
    )
    run = sub.add_parser("run", help="train on heldout/, score held-out and training videos")
    run.add_argument("--views", type=Path, required=True)
    run.add_argument("--output", type=Path, required=True)
    run.add_argument("--method", default="delu")
    run.add_argument("--modules", nargs="*", default=None)
    run.add_argument("--text-priors", type=Path, default=None)
    run.add_argument("--config", type=Path, default=None)
    run.add_argument("--set", action="append", default=[])
    run.add_argument("--iterations", type=int, default=1000)
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--jobs", type=int, default=2, help="seeds trained at once (one thread each)")
    run.add_argument(
        "--tiou-range",
        default=None,
        help="low:high of the average mAP to report (default: the set's family's, 0.1:0.7 or 0.5:0.95)",
    )
    args = parser.parse_args()
    return {"views": cmd_views, "run": cmd_run}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
