"""Time the text-priors build on ActivityNet1.2-sized input (about 10k descriptions).

The descriptions are *generated* English sentences (random subjects, verbs, objects and
clauses around the class name), not MLLM output; they only stand in for the size and the
sentence lengths.  Prints rows, words and seconds.

    OMP_NUM_THREADS=1 python benchmarks/bench_text_priors.py [--rows 10000] [--n-process 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prior_generation.text_priors import TextPriorsConfig, build_text_priors, compute_report, format_report

CLASSES = [
    "Archery",
    "Ballet",
    "Bathing dog",
    "Belly dance",
    "Brushing teeth",
    "Chopping wood",
    "Clean and jerk",
    "Discus throw",
    "Doing karate",
    "Drinking coffee",
    "Grooming horse",
    "High jump",
    "Javelin throw",
    "Kayaking",
    "Mowing the lawn",
    "Playing piano",
    "Pole vault",
    "Rock climbing",
    "Shaving",
    "Tai chi",
]
SUBJECTS = ["a man", "a woman", "the athlete", "a young girl", "an old man", "the person", "a boy", "the performer"]
VERBS = [
    "starts",
    "moves",
    "turns",
    "lifts",
    "holds",
    "walks",
    "runs",
    "steps",
    "reaches",
    "pushes",
    "pulls",
    "grabs",
    "raises",
    "lowers",
    "bends",
    "swings",
    "jumps",
    "spins",
    "smiles",
    "watches",
]
OBJECTS = [
    "the equipment",
    "his arms",
    "her hands",
    "the handle",
    "a small tool",
    "the ball",
    "the rope",
    "a cup",
    "the bar",
    "the brush",
    "the paddle",
    "the board",
]
PLACES = [
    "in a large room",
    "on a sunny field",
    "near the water",
    "in front of a crowd",
    "at home",
    "inside a gym",
    "on a wooden stage",
    "in the backyard",
]
ENDINGS = [
    "while people watch",
    "and then stops",
    "before the camera cuts away",
    "with great care",
    "as the music plays",
    "several times",
    "slowly and carefully",
    "and looks at the camera",
]


def sentence(rng: np.random.Generator, cls: str, clauses: int) -> str:
    parts = [f"{rng.choice(SUBJECTS).capitalize()} is {cls.lower()} {rng.choice(PLACES)}"]
    for _ in range(clauses):
        parts.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}")
    return ", and ".join(parts) + "."


def make(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("video_id", "class_name", "kind", "text", "error", "flags")}
    for i in range(rows // 2):
        cls = CLASSES[i % len(CLASSES)]
        for kind, clauses in (("key", 1), ("complete", int(rng.integers(3, 7)))):
            cols["video_id"].append(f"video_{i:05d}")
            cols["class_name"].append(cls)
            cols["kind"].append(kind)
            cols["text"].append(sentence(rng, cls, clauses))
            cols["error"].append(None)
            cols["flags"].append(None)
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}), path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--out", default=None)
    parser.add_argument("--n-process", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        src = out / "bench_descriptions.parquet"
        out.mkdir(parents=True, exist_ok=True)
        make(src, args.rows)
        t0 = time.perf_counter()
        meta = build_text_priors(src, out / "text_priors", TextPriorsConfig(n_process=args.n_process))
        seconds = time.perf_counter() - t0
        c = meta["counts"]
        print(
            f"rows {c['input_rows']}, usable {c['usable']}, words {c['tokens']}, vocab {c['vocab_size']}: "
            f"{seconds:.2f} s ({c['input_rows'] / seconds:.0f} descriptions/s)"
        )
        print(format_report(compute_report(out / "text_priors")))


if __name__ == "__main__":
    main()
