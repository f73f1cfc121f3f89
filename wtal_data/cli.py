"""``python -m wtal_data``: ingest real data, generate synthetic sets, summarize.

Thin wrappers over :mod:`.ingest` and :mod:`.synthetic`.  A :class:`DatasetError` exits
with status 2 and its message (which names the file and the video), no traceback.

The ``synth`` subcommand belongs to :mod:`.synthetic`; it is imported only when that
subcommand is asked for, so ingest keeps working whatever state that module is in.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .canonical import DatasetError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None) -> None:
    """Log INFO to stderr and, when given, to ``log_file`` (appended)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format`` with every registered reader's own flags (:mod:`.ingest_formats`), then the common ones."""
    from .ingest import DATASETS
    from .ingest_formats import FeatureOptions, add_format_arguments

    add_format_arguments(parser)
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="real data set preset")
    parser.add_argument("--output", required=True, type=Path, help="canonical folder to write")
    parser.add_argument(
        "--ambiguous", type=Path, help="Ambiguous_test.txt ('video start end' in seconds); default: the W-TALC folder's"
    )
    FeatureOptions.add_arguments(parser)
    parser.add_argument("--log", type=Path, help="log file (default: OUTPUT/ingest.log)")


def run_ingest(args: argparse.Namespace) -> int:
    from .ingest import format_summary, ingest
    from .ingest_formats import INGEST_FORMATS, FeatureOptions

    setup_logging(args.log if args.log is not None else args.output / "ingest.log")
    features = FeatureOptions.from_args(args)
    reader = INGEST_FORMATS[args.fmt].from_args(args, features)
    summary = ingest(args.output, args.dataset, reader, features, ambiguous=args.ambiguous)
    print(format_summary(summary))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from .ingest import format_summary, summarize

    summary = summarize(args.directory)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _synthetic_module():
    """Import :mod:`.synthetic` or explain that it is not there yet."""
    try:
        from . import synthetic
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.synthetic":
            raise
        raise DatasetError("synth: module wtal_data.synthetic is not available in this checkout") from None
    missing = [name for name in ("add_synth_arguments", "run_synth") if not hasattr(synthetic, name)]
    if missing:
        raise DatasetError(f"synth: wtal_data.synthetic does not define {', '.join(missing)} yet")
    return synthetic


def build_parser(with_synth: bool = False) -> argparse.ArgumentParser:
    """``with_synth`` loads the synthetic generator's own arguments (only when asked for)."""
    parser = argparse.ArgumentParser(prog="python -m wtal_data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_ingest = sub.add_parser("ingest", help="convert a real data set's files into the canonical folder")
    add_ingest_arguments(p_ingest)
    p_ingest.set_defaults(handler=run_ingest)
    p_synth = sub.add_parser("synth", help="generate a synthetic data set (thumos14-synth, demo)", add_help=with_synth)
    if with_synth:
        synthetic = _synthetic_module()
        synthetic.add_synth_arguments(p_synth)
        p_synth.set_defaults(handler=lambda a: synthetic.run_synth(a))
    p_summary = sub.add_parser("summary", help="print counts per subset of a canonical folder")
    p_summary.add_argument("directory", type=Path, help="canonical folder (holding ground_truth.json)")
    p_summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_summary.set_defaults(handler=run_summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(with_synth=bool(argv) and argv[0] == "synth")
        args = parser.parse_args(argv)
        return int(args.handler(args) or 0)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _log_to_files(f"error: {exc}")
        return 2


def _log_to_files(message: str) -> None:
    """Put a failure in the --log file too: that file is what Snakemake shows for a failed job."""
    record = logging.makeLogRecord(
        {"name": "wtal_data", "msg": message, "levelno": logging.ERROR, "levelname": "ERROR"}
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


if __name__ == "__main__":
    sys.exit(main())
