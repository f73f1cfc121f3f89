"""Generation time and sizes of `demo`, `thumos14-synth` and `thumos14-vd`, plus the difficulty probes.

    python benchmarks/bench_synthetic.py --structure data/thumos14/canonical/ground_truth.json \
        [--config config/synthetic.yaml] [--vd-config config/synthetic_vd.yaml] [--workdir /tmp/bench_synth] \
        [--skip-full] [--skip-vd] [--probe-snippets 15000]

Prints one JSON object per generated set (counts, bytes, seconds), then the oracle
probes of wtal_data.synthetic.sanity on the full set (or the demo with --skip-full) and
on thumos14-vd (with its per-video fact probes), the text-to-video retrieval probe
(key descriptions vs class names, ``text_*``) included.  Figures, not a test: the numbers go
to docs/benchmarks.md and docs/synthetic-benchmark.md.
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
from wtal_data.synthetic.sanity import fact_probe, probe, text_probe  # noqa: E402
from wtal_data.word_vectors import load_word_vectors  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structure", required=True, help="canonical ground_truth.json of real THUMOS14")
    parser.add_argument("--config", default="config/synthetic.yaml")
    parser.add_argument("--workdir", default=None, help="where to generate (default: a temporary folder)")
    parser.add_argument("--skip-full", action="store_true", help="only the demo size")
    parser.add_argument("--vd-config", default="config/synthetic_vd.yaml", help="config of thumos14-vd")
    parser.add_argument("--skip-vd", action="store_true", help="do not generate thumos14-vd")
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

    _probe(last, cfg, args.probe_snippets)
    if not args.skip_vd:
        vd_cfg = load_config(args.vd_config)
        summary = generate_dataset(structure, vd_cfg, work / "vd", size="full", videos=False, progress=False)
        print(json.dumps({"size": "full", "config": args.vd_config, **summary}))
        _probe(work / "vd" / "canonical", vd_cfg, args.probe_snippets)
    print(f"outputs in {work}")
    return 0


def _probe(canonical: Path, cfg: dict, max_snippets: int) -> None:
    """Print the oracle probes of one generated set (its fact probes, if it has facts, and the text probe)."""
    gt = load_ground_truth(canonical)
    scripts = json.loads((canonical / "scripts.json").read_text())
    words = {e["word"] for rec in scripts["videos"].values() for e in rec["events"]}
    store = FeatureStore.open(canonical)
    t0 = time.perf_counter()
    figures = probe(
        store, gt, scripts, load_word_vectors(cfg["word_vectors"], restrict_to=words), max_snippets=max_snippets
    )
    figures.update(fact_probe(store, gt, scripts))
    figures.update(text_probe(store, gt, scripts, max_snippets=max_snippets))  # loads the words it needs
    figures = {k: round(v, 4) for k, v in figures.items()}
    print(json.dumps({"probe_on": gt["dataset"], "probe_seconds": round(time.perf_counter() - t0, 2), **figures}))


if __name__ == "__main__":
    raise SystemExit(main())
