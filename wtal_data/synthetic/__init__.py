"""``thumos14-synth`` and ``demo``: a synthetic benchmark where text matters.

Real THUMOS14 structure (videos, durations, splits, segments, classes); generated
content in which each class is a script of word-named phases, some shared between
classes, with class-context background around the actions; features derived from real
GloVe vectors of those words.  See docs/synthetic-benchmark.md for the reasoning and
config/synthetic.yaml for the frozen parameters.  ``thumos14-vd`` (config/synthetic_vd.yaml,
which extends it) adds per-video facts to the features and the descriptions, so that the
descriptions can only be completed by looking at the video.

CLI (wired by ``python -m wtal_data synth``)::

    --config config/synthetic.yaml --size full|demo|subset --seed N
    --structure data/thumos14/canonical/ground_truth.json --output data/thumos14-synth
    [--videos/--no-videos] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from wtal_common.cli import run_cli
from wtal_common.logs import setup_logging

from ..canonical import DatasetError, load_ground_truth
from .build import DATASET_NAMES, generate_dataset, select_demo_videos
from .describer import describe
from .scripts import SCRIPTS_FILE, load_config
from .subsets import SIZES, select_subset_videos

__all__ = [
    "add_synth_arguments",
    "default_log_file",
    "run_synth",
    "synth",
    "generate_dataset",
    "select_demo_videos",
    "select_subset_videos",
    "SIZES",
    "describe",
    "load_config",
    "DATASET_NAMES",
    "SCRIPTS_FILE",
]

DEFAULT_CONFIG = "config/synthetic.yaml"

log = logging.getLogger("wtal_data.synthetic")


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synth`` command's arguments to ``parser``."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="generator parameters (frozen YAML)")
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="full: every video of the structure (thumos14-synth; thumos14-vd with config/synthetic_vd.yaml); "
        "demo: the shortest videos of each class (config demo.*); subset: a seeded draw per class "
        "(config subset.*; activitynet12-vd with config/synthetic_anet.yaml)",
    )
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the config's)")
    parser.add_argument(
        "--structure", required=True, help="canonical ground_truth.json of the real set whose structure is used"
    )
    parser.add_argument("--output", required=True, help="data set root, e.g. data/thumos14-synth or data/demo")
    parser.add_argument(
        "--videos",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="render mp4 files (default: on for demo, off for full)",
    )
    parser.add_argument("--log", default=None, help="log file (default: OUTPUT/synth.log)")


def default_log_file(args: argparse.Namespace) -> Path:
    return Path(args.output) / "synth.log"


def synth(args: argparse.Namespace) -> int:
    """The ``synth`` command (logging set up by the caller); raises on bad input."""
    cfg = load_config(args.config)
    structure = load_ground_truth(args.structure)
    if structure.get("synthetic"):
        raise DatasetError(f"{args.structure}: is itself synthetic; give a real data set's ground truth")
    log.info("synth size=%s seed=%s structure=%s output=%s", args.size, args.seed, args.structure, args.output)
    summary = generate_dataset(structure, cfg, args.output, size=args.size, seed=args.seed, videos=args.videos)
    print(json.dumps(summary, indent=1))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    """Set up logging (``--log``, default ``OUTPUT/synth.log``) and run :func:`synth`; the exit code."""
    setup_logging(args.log if args.log else default_log_file(args))
    return run_cli(lambda: synth(args))
