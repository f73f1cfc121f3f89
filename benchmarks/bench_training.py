"""Training speed (iterations/s) and test-split evaluation time on a THUMOS14-shaped set.

Generated random features (not a data set): 412 videos (200 train / 212 test), ~137k
snippets of 2048 dims by default, batch 10 x 320 snippets, DELU loss, Adam.  Prints
figures; the GPU targets (>= 120 it/s, eval < 2 s) are measured with ``--device cuda``.

    python benchmarks/bench_training.py --device cpu --iterations 5 --scale 0.1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wtal_data.canonical import FeatureStore
from wtal_training.config import build_config
from wtal_training.inference import infer
from wtal_training.models import build_base_method
from wtal_training.models.base import inference_snippet_budget
from wtal_training.objectives import PlainObjective
from wtal_training.postprocess import predictions_from_outputs
from wtal_training.sampler import BatchSampler, DeviceFeatureSet


def thumos_shaped(scale: float, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_train, n_test = max(40, int(200 * scale)), max(4, int(212 * scale))
    lengths = np.clip(rng.lognormal(np.log(250), 0.8, n_train + n_test), 20, 5000).astype(int)
    lengths = (lengths * (137_318 * scale / lengths.sum())).astype(int).clip(10)
    classes = [f"c{i}" for i in range(20)]
    packed = rng.standard_normal((int(lengths.sum()), dim), dtype=np.float32)
    index, database, off = {}, {}, 0
    for i, n in enumerate(lengths):
        vid = f"v{i:04d}"
        index[vid] = (off, int(n))
        off += int(n)
        subset = "train" if i < n_train else "test"
        database[vid] = {
            "subset": subset,
            "duration": n * 0.64,
            "labels": [classes[i % 20]],
            "annotations": [{"label": classes[i % 20], "segment": [0.0, n * 0.32]}],
        }
    gt = {
        "classes": classes,
        "snippet_seconds": 0.64,
        "database": database,
        "dataset": "bench",
        "family": "thumos14",
        "ambiguous": {},
    }
    store = FeatureStore(packed, index, dim, {"rgb": (0, dim // 2), "flow": (dim // 2, dim)})
    return gt, store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of THUMOS14's videos/snippets")
    p.add_argument("--feature-dim", type=int, default=2048)
    p.add_argument("--method", default="delu")
    args = p.parse_args()
    torch.manual_seed(0)
    gt, store = thumos_shaped(args.scale, args.feature_dim)
    train_ids = sorted(v for v, e in gt["database"].items() if e["subset"] == "train")
    test_ids = sorted(v for v, e in gt["database"].items() if e["subset"] == "test")
    t0 = time.perf_counter()
    train = DeviceFeatureSet(store, gt, train_ids, args.device)
    test = DeviceFeatureSet(store, gt, test_ids, args.device)
    load_s = time.perf_counter() - t0
    config = build_config(args.method, "thumos14", sets=["data.max_seqlen=320"], iterations=max(args.iterations, 1))
    model = build_base_method(config, args.feature_dim, 20).to(args.device)
    objective = PlainObjective(config, model)
    sampler = BatchSampler(train, 10, 3, 320, seed=0)
    for it in range(1, 4):  # warm-up
        objective.step(sampler.sample(), it)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for it in range(1, args.iterations + 1):
        objective.step(sampler.sample(), it)
    sync()
    train_s = time.perf_counter() - t0
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    outputs = infer(model, test)
    sync()
    infer_s = time.perf_counter() - t0
    peak = f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else ""
    t0 = time.perf_counter()
    preds = predictions_from_outputs(outputs, gt, config)
    post_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    from evaluation.detection import evaluate_detection

    evaluate_detection(gt, preds, subset="test", tiou_thresholds=config.test.tiou_thresholds)
    map_s = time.perf_counter() - t0
    name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; method {args.method}; feature_dim {args.feature_dim}; scale {args.scale}: "
        f"{len(train_ids)} train / {len(test_ids)} test videos, {store.packed.shape[0]} snippets"
    )
    print(f"load to device: {load_s:.2f} s")
    print(
        f"training: {args.iterations / train_s:.2f} iterations/s (batch 10 x 320 snippets, {args.iterations} iterations)"
    )
    print(
        f"evaluation of {len(test_ids)} test videos: inference {infer_s:.2f} s + proposals/soft-NMS {post_s:.2f} s "
        f"+ mAP {map_s:.2f} s = {infer_s + post_s + map_s:.2f} s ({sum(len(v) for v in preds['results'].values())} predictions)"
        f"{peak}"
    )
    longest = max(n for _, n in store.index.values())
    print(
        f"longest video: {longest} snippets (videos per inference forward: {model.inference_videos_per_chunk(longest, inference_snippet_budget(torch.device(args.device)))})"
    )


if __name__ == "__main__":
    main()
