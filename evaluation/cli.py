"""Command line: evaluate an ActivityNet results file against a ground-truth file.

    python -m evaluation --ground-truth GT.json --predictions PRED.json --subset test \
        --tiou 0.1:0.7:0.1 --output OUT.json [--preset thumos14|activitynet] \
        [--filter-ambiguous] [--unknown-labels error|ignore] [--log LOG]

Prints a table of mAP (in %) per threshold and the averages; writes OUT.json (values in
[0, 1]) atomically.  Exit codes are those of :mod:`wtal_common.errors` (2: bad input, with
a message naming the file), mapped by :func:`wtal_common.cli.run_cli`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from wtal_common.cli import EXIT_CODES_HELP, program_name, run_cli
from wtal_common.io import atomic_write_json
from wtal_common.logs import setup_logging

from .detection import evaluate_detection
from .thresholds import PRESETS, EvaluationError, parse_tiou

LOGGER = logging.getLogger("evaluation")


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Read a JSON file, turning every failure into an :class:`EvaluationError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise EvaluationError(f"{what} file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{what} file {path} is not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read {what} file {path}: {exc}") from exc


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"subset={result['subset']}  classes={result['num_classes']}  "
        f"ground truth={result['num_ground_truth']}  predictions={result['num_predictions']}"
        f"{'  (ambiguous filtered)' if result['filter_ambiguous'] else ''}",
        "tIoU      mAP(%)",
    ]
    lines += [f"{k:<9} {100 * v:6.2f}" for k, v in result["mAP"].items()]
    lines += [f"avg {k:<9} {100 * v:6.2f}" for k, v in result["average_mAP"].items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("evaluation", "mllm4wtal-eval"),
        description="Score temporal action detections (ActivityNet results JSON) against a ground truth: "
        "mAP at each tIoU threshold and its averages, the ActivityNet protocol. Prints a table in %; "
        "--output writes the figures (in [0, 1]) as JSON.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--ground-truth", required=True, help="ActivityNet ground-truth JSON (top key 'database')")
    parser.add_argument("--predictions", required=True, help="ActivityNet results JSON (top key 'results')")
    parser.add_argument(
        "--subset",
        default="test",
        help="videos whose 'subset' equals this exactly (canonical: train/test); 'all' for every video",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="thresholds and averages of a benchmark (default thumos14 unless --tiou is given)",
    )
    parser.add_argument(
        "--tiou", default=None, help="start:stop:step (stop included) or a comma list; overrides --preset"
    )
    parser.add_argument("--output", default=None, help="where to write the result JSON (atomically)")
    parser.add_argument(
        "--filter-ambiguous",
        action="store_true",
        help="drop predictions overlapping the ground truth's 'ambiguous' segments",
    )
    parser.add_argument(
        "--unknown-labels",
        choices=("error", "ignore"),
        default="error",
        help="what to do with predicted labels the ground truth does not know",
    )
    parser.add_argument(
        "--log",
        "--log-file",
        dest="log_file",
        metavar="FILE",
        default=None,
        help="also append log messages to this file",
    )
    return parser


def evaluate(args: argparse.Namespace) -> int:
    thresholds, averages = PRESETS[args.preset or "thumos14"]
    if args.tiou is not None:
        thresholds = parse_tiou(args.tiou)
        averages = averages if args.preset and thresholds == PRESETS[args.preset][0] else None
    ground_truth = load_json(args.ground_truth, "ground-truth")
    predictions = load_json(args.predictions, "predictions")
    result = evaluate_detection(
        ground_truth,
        predictions,
        subset=None if args.subset == "all" else args.subset,
        tiou_thresholds=thresholds,
        averages=averages,
        filter_ambiguous=args.filter_ambiguous,
        unknown_labels=args.unknown_labels,
        gt_source=str(args.ground_truth),
        pred_source=str(args.predictions),
    )
    result["ground_truth_file"] = str(args.ground_truth)
    result["predictions_file"] = str(args.predictions)
    print(format_table(result))
    if args.output:
        atomic_write_json(args.output, result)
        LOGGER.info("wrote %s", args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_file)
    return run_cli(lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
