"""Run the paper's ablations (Tables 3 and 5) with the trainer CLI and print the tables.

Each arm is one `python -m wtal_training train` command over several seeds; the final
checkpoint of every seed is evaluated on the test split (no model selection), and the
table shows mean ± sample std over seeds, in percent.  Arms:

  Table 3: baseline, +KSM, +CSR, +KSM+CSR
  Table 5: KSM fed class names instead of key descriptions (CSR on),
           CSR fed the template "a video of the [CLS]" instead of complete descriptions (KSM on)

Examples::

    # the demo data set on a laptop CPU (smoke scale; see docs/results.md)
    python benchmarks/run_ablations.py --data data/demo/canonical \\
        --text-priors results/priors/demo/synthetic/text_priors --config config/demo_training.yaml \\
        --iterations 600 --seeds 0 1 2 --device cpu --parallel 2 --output-root results/ablations/demo

    # thumos14-synth on one GPU (the issue's study; method defaults, 5,000 iterations)
    python benchmarks/run_ablations.py --data data/thumos14-synth/canonical \\
        --text-priors results/priors/thumos14-synth/synthetic/text_priors --seeds 0 1 2 --device cuda \\
        --output-root results/ablations/thumos14-synth

Arms whose `results.json` already exists are not rerun (delete the folder to redo one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ARMS = {  # name: (modules, mllm4wtal options)
    "baseline": ([], {}),
    "+KSM": (["ksm"], {}),
    "+CSR": (["csr"], {}),
    "+KSM+CSR": (["ksm", "csr"], {}),
    "KSM: class name": (["ksm", "csr"], {"ksm_text": "class_name"}),
    "CSR: a video of the [CLS]": (["ksm", "csr"], {"csr_text": "template"}),
}
TABLE3 = ["baseline", "+KSM", "+CSR", "+KSM+CSR"]
TABLE5 = ["KSM: class name", "+KSM+CSR", "CSR: a video of the [CLS]"]
TIOUS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def arm_config(base_config: str | None, options: dict, directory: Path) -> str | None:
    """The --config file of one arm: the shared config plus the arm's mllm4wtal options."""
    if not options:
        return base_config
    cfg = yaml.safe_load(Path(base_config).read_text()) if base_config else {}
    cfg = dict(cfg or {})
    cfg["mllm4wtal"] = {**(cfg.get("mllm4wtal") or {}), **options}
    path = directory / "arm_config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def run_arm(name: str, args: argparse.Namespace) -> tuple[str, float]:
    modules, options = ARMS[name]
    out = Path(args.output_root) / f"{args.method}_{slug(name)}"
    if (out / "results.json").exists():
        return name, 0.0
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "wtal_training",
        "train",
        "--data",
        args.data,
        "--method",
        args.method,
        "--seeds",
        *map(str, args.seeds),
        "--device",
        args.device,
        "--output-dir",
        str(out),
        "--no-progress",
    ]
    if modules:
        cmd += ["--modules", *modules, "--text-priors", args.text_priors]
    config = arm_config(args.config, options, out)
    if config:
        cmd += ["--config", config]
    if args.iterations:
        cmd += ["--iterations", str(args.iterations)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    with open(out / "run.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        raise SystemExit(f"arm '{name}' failed (exit {proc.returncode}); see {out / 'run.log'}")
    return name, time.perf_counter() - start


def row(name: str, args: argparse.Namespace) -> str:
    results = json.loads((Path(args.output_root) / f"{args.method}_{slug(name)}" / "results.json").read_text())
    mean, std = results["mean"], results["std"]
    cells = [f"{100 * mean['mAP'][t]:.1f} ± {100 * std['mAP'][t]:.1f}" for t in TIOUS]
    for key in ("0.3:0.7", "0.1:0.7"):
        cells.append(f"{100 * mean['average_mAP'][key]:.1f} ± {100 * std['average_mAP'][key]:.1f}")
    return f"| {name} | " + " | ".join(cells) + " |"


def table(names: list[str], args: argparse.Namespace) -> str:
    header = "| arm | " + " | ".join(f"@{t}" for t in TIOUS) + " | avg 0.3:0.7 | avg 0.1:0.7 |"
    rule = "|---" * (len(TIOUS) + 3) + "|"
    return "\n".join([header, rule, *(row(n, args) for n in names)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="canonical data set folder")
    p.add_argument("--text-priors", required=True, help="text priors folder of the data set's MLLM")
    p.add_argument("--method", default="delu")
    p.add_argument("--config", help="training config YAML shared by every arm")
    p.add_argument("--iterations", type=int, help="default: the method's own")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="auto")
    p.add_argument("--parallel", type=int, default=1, help="arms run at once (CPU: one per core)")
    p.add_argument("--threads", type=int, default=1, help="OMP threads per arm")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--output-root", required=True)
    args = p.parse_args()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for name, seconds in pool.map(lambda n: run_arm(n, args), args.arms):
            print(f"{name}: {'cached' if not seconds else f'{seconds:.0f} s'}", flush=True)
    print(f"\nTable 3 ({args.method}; mAP %, mean ± sample std over seeds {args.seeds})\n")
    print(table([n for n in TABLE3 if n in args.arms], args))
    print(f"\nTable 5 ({args.method})\n")
    print(table([n for n in TABLE5 if n in args.arms], args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
