"""Time ``evaluate_detection`` on a THUMOS14-test-sized input (target: under 1 s on 2 cores).

Input (generated, seeded; not a data set): 212 videos, 20 classes, 3358 ground-truth
segments, 50,000 predictions (mostly jittered copies of ground truth of the video's
classes, the rest random segments and labels), tIoU 0.1:0.7:0.1.  With
``--ground-truth data/thumos14/raw/um-format/gt.json`` the real THUMOS14 test ground
truth replaces the generated one (predictions are generated the same way).

    python benchmarks/bench_evaluation.py [--predictions 50000] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from evaluation import THUMOS14_TIOU, evaluate_detection  # noqa: E402


def make_ground_truth(rng: np.random.Generator, videos: int = 212, classes: int = 20, segments: int = 3358) -> dict:
    names = [f"class{c:02d}" for c in range(classes)]
    per_video = rng.multinomial(segments - videos, np.full(videos, 1 / videos)) + 1
    database = {}
    for v in range(videos):
        duration = float(rng.uniform(60, 400))
        labels = rng.choice(classes, size=1 + (rng.random() < 0.15), replace=False)
        anns = []
        for _ in range(per_video[v]):
            length = float(rng.gamma(2.0, 2.5)) + 0.5
            start = float(rng.uniform(0, duration - length))
            anns.append({"label": names[int(rng.choice(labels))], "segment": [start, start + length]})
        database[f"video_test_{v:07d}"] = {"subset": "test", "duration": duration, "annotations": anns}
    return {"database": database, "classes": names}


def make_predictions(rng: np.random.Generator, gt: dict, count: int) -> dict:
    database = gt["database"]
    names = sorted({a["label"] for v in database.values() for a in v["annotations"]})
    vids = [v for v in database if database[v]["annotations"]]
    results: dict[str, list] = {v: [] for v in vids}
    for _ in range(count):
        vid = vids[int(rng.integers(len(vids)))]
        anns = database[vid]["annotations"]
        if rng.random() < 0.7:
            ann = anns[int(rng.integers(len(anns)))]
            s, e = (float(x) for x in ann["segment"])
            length = e - s
            s = max(0.0, s + float(rng.normal(0, 0.3 * length + 0.2)))
            e = s + max(0.0, length * float(rng.lognormal(0, 0.4)))
            label = ann["label"] if rng.random() < 0.9 else names[int(rng.integers(len(names)))]
        else:
            s = float(rng.uniform(0, 300))
            e = s + float(rng.gamma(2.0, 3.0))
            label = names[int(rng.integers(len(names)))]
        results[vid].append({"label": label, "score": round(float(rng.random()), 4), "segment": [s, e]})
    return {"results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ground-truth", default=None, help="a real ActivityNet-format GT (subset 'test')")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.ground_truth:
        with open(args.ground_truth) as handle:
            gt = json.load(handle)
        gt["database"] = {k: v for k, v in gt["database"].items() if v.get("subset") == "test"}
        source = args.ground_truth
    else:
        gt = make_ground_truth(rng)
        source = "generated (seeded), THUMOS14-test-sized"
    pred = make_predictions(rng, gt, args.predictions)
    times, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = evaluate_detection(gt, pred, subset="test", tiou_thresholds=THUMOS14_TIOU)
        times.append(time.perf_counter() - t0)
    print(
        f"ground truth: {source}: {result['num_videos']} videos, {result['num_classes']} classes, "
        f"{result['num_ground_truth']} segments; predictions: {result['num_predictions']}"
    )
    print(
        f"evaluate_detection @ tIoU 0.1:0.7:0.1: median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeats} runs)"
    )
    print("mAP(%): " + "  ".join(f"{k}={100 * v:.2f}" for k, v in result["mAP"].items()))


if __name__ == "__main__":
    main()
