"""Generation time and sizes of `demo` and `thumos14-synth`, plus the difficulty probes.

    python benchmarks/bench_synthetic.py --structure data/thumos14/canonical/ground_truth.json \
        [--config config/synthetic.yaml] [--workdir /tmp/bench_synth] [--skip-full] [--probe-snippets 15000]

Prints one JSON object per generated set (counts, bytes, seconds), then the oracle
probes of wtal_data.synthetic.sanity on the full set (or the demo with
--skip-full).  Figures, not a test: the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from wtal_data.canonical import FeatureStore, load_ground_truth  # noqa: E402
from wtal_data.synthetic import generate_dataset, load_config  # noqa: E402
from wtal_data.synthetic.sanity import probe  # noqa: E402
from wtal_data.word_vectors import load_word_vectors  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structure", required=True, help="canonical ground_truth.json of real THUMOS14")
    parser.add_argument("--config", default="config/synthetic.yaml")
    parser.add_argument("--workdir", default=None, help="where to generate (default: a temporary folder)")
    parser.add_argument("--skip-full", action="store_true", help="only the demo size")
    parser.add_argument("--probe-snippets", type=int, default=15000, help="snippets per subset for the probes")
    args = parser.parse_args()

    cfg = load_config(args.config)
    structure = load_ground_truth(args.structure)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_synth_"))
    sizes = ["demo"] if args.skip_full else ["demo", "full"]
    last = None
    for size in sizes:
        out = work / size
        summary = generate_dataset(structure, cfg, out, size=size, videos=(size == "demo"), progress=False)
        print(json.dumps({"size": size, **summary}))
        last = out / "canonical"

    gt = load_ground_truth(last)
    scripts = json.loads((last / "scripts.json").read_text())
    words = {e["word"] for rec in scripts["videos"].values() for e in rec["events"]}
    t0 = time.perf_counter()
    figures = probe(
        FeatureStore.open(last),
        gt,
        scripts,
        load_word_vectors(cfg["word_vectors"], restrict_to=words),
        max_snippets=args.probe_snippets,
    )
    figures = {k: round(v, 4) for k, v in figures.items()}
    print(json.dumps({"probe_on": gt["dataset"], "probe_seconds": round(time.perf_counter() - t0, 2), **figures}))
    print(f"outputs in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
