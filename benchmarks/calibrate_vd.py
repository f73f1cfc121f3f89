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

Example (calibration 2 of ``thumos14-vd``, docs/synthetic-benchmark.md)::

    python benchmarks/calibrate_vd.py views --data data/thumos14-vd/canonical --output /tmp/cal
    python benchmarks/calibrate_vd.py run --views /tmp/cal --output /tmp/cal/runs/delu \\
        --config config/demo_training.yaml --iterations 1000 --seeds 0 1 2 --jobs 2
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
from wtal_data.canonical import FeatureStore, load_ground_truth, write_features, write_ground_truth

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_stats import run_stats  # noqa: E402  (a sibling benchmark script)

TIOU_RANGE = "0.1:0.7"


def holdout_split(gt: dict, fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(kept, held_out) training video ids: a seeded random ``fraction`` held out, redrawn
    until every class keeps at least two training videos (same-class pairs) and appears
    among the held-out videos (every class is scored)."""
    train = sorted(v for v, e in gt["database"].items() if e["subset"] == "train")
    rng = np.random.default_rng(seed)
    n_out = max(1, round(fraction * len(train)))
    for _ in range(1000):
        held = set(rng.choice(len(train), n_out, replace=False).tolist())
        kept_ids = [v for i, v in enumerate(train) if i not in held]
        out_ids = [v for i, v in enumerate(train) if i in held]
        kept_counts = {c: 0 for c in gt["classes"]}
        out_classes = set()
        for v in kept_ids:
            for c in gt["database"][v].get("labels", []):
                kept_counts[c] += 1
        for v in out_ids:
            out_classes |= set(gt["database"][v].get("labels", []))
        if min(kept_counts.values()) >= 2 and out_classes == set(gt["classes"]):
            return kept_ids, out_ids
    raise SystemExit(f"no held-out split of {fraction} keeps every class on both sides")


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
    kept, held = holdout_split(gt, args.fraction, args.seed)
    write_view(args.data, args.output / "heldout", kept, held, "heldout")
    write_view(args.data, args.output / "fit", held, kept, "fit")
    print(json.dumps({"train": len(kept), "heldout": len(held), "output": str(args.output)}))
    return 0


def _average(map_json: Path) -> float:
    return float(json.loads(map_json.read_text())["average_mAP"][TIOU_RANGE])


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
        "heldout": _average(out / "map.json"),
        "train": _average(fit / "map.json"),
        "att_auc": stats["att_auc"],
        "att>=0.5": stats["att>=0.5"],
        "train_seconds": float(run.get("train_seconds", float("nan"))),
    }


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        figures = dict(zip(args.seeds, pool.map(lambda s: _train_one(args, s), args.seeds)))
    for seed, row in figures.items():
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    keys = next(iter(figures.values())).keys()
    summary = {k: mean_and_std([row[k] for row in figures.values()]) for k in keys}
    print("mean ± std: " + ", ".join(f"{k} {m:.3f} ± {s:.3f}" for k, (m, s) in summary.items()))
    (args.output / "calibration.json").write_text(json.dumps({"seeds": figures, "summary": summary}, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    views = sub.add_parser("views", help="write the heldout/ and fit/ views of a canonical set")
    views.add_argument("--data", type=Path, required=True, help="canonical folder of the generated set")
    views.add_argument("--output", type=Path, required=True)
    views.add_argument("--fraction", type=float, default=0.2, help="share of training videos held out")
    views.add_argument("--seed", type=int, default=0)
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
    args = parser.parse_args()
    return {"views": cmd_views, "run": cmd_run}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
