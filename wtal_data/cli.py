"""``python -m wtal_data``: ingest real data, extract I3D features, generate synthetic sets, summarize.

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
    from .ingest import DATASETS, FORMATS
    from .ingest_wtalc import VIDEO_LABEL_POLICIES

    parser.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default="wtalc",
        help="input layout: wtalc (<Name>-Annotations/*.npy), um (gt.json + split files), "
        "per-video (either annotation source, features from per-video folders)",
    )
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="real data set preset")
    parser.add_argument("--output", required=True, type=Path, help="canonical folder to write")
    ann = parser.add_argument_group("annotations (one source)")
    ann.add_argument("--annotations", type=Path, help="W-TALC <Name>-Annotations folder")
    ann.add_argument("--gt-json", type=Path, help="UM ActivityNet-style gt.json")
    ann.add_argument("--split-train", type=Path, help="UM split_train.txt")
    ann.add_argument("--split-test", type=Path, help="UM split_test.txt")
    ann.add_argument(
        "--durations", type=Path, help="JSON {video: seconds} or a ground truth with durations (UM gt.json has none)"
    )
    ann.add_argument(
        "--ambiguous", type=Path, help="Ambiguous_test.txt ('video start end' in seconds); default: the W-TALC folder's"
    )
    ann.add_argument("--classes", type=Path, help="class list, one per line (UM; default: sorted labels)")
    ann.add_argument(
        "--video-labels",
        choices=VIDEO_LABEL_POLICIES,
        default="labels_all",
        help="W-TALC video-level labels: labels_all.npy as published (derived from segments "
        "where empty), the segments' labels, or their union",
    )
    feat = parser.add_argument_group("features (one source, or --no-features)")
    feat.add_argument(
        "--features", type=Path, help="packed <Name>-I3D-JOINTFeatures.npy (default for wtalc: next to --annotations)"
    )
    feat.add_argument(
        "--features-dir", type=Path, action="append", default=[], help="folder of <video>.npy (T, 2048); repeatable"
    )
    feat.add_argument(
        "--rgb-dir", type=Path, action="append", default=[], help="folder of rgb <video>.npy (T, 1024); repeatable"
    )
    feat.add_argument(
        "--flow-dir", type=Path, action="append", default=[], help="folder of flow <video>.npy (T, 1024); repeatable"
    )
    feat.add_argument("--feature-dim", type=int, default=2048, help="expected feature dimension (RGB + flow)")
    feat.add_argument("--no-features", action="store_true", help="write ground_truth.json alone")
    parser.add_argument("--log", type=Path, help="log file (default: OUTPUT/ingest.log)")


def run_ingest(args: argparse.Namespace) -> int:
    from .ingest import format_summary, ingest, load_durations, read_class_list

    setup_logging(args.log if args.log is not None else args.output / "ingest.log")
    summary = ingest(
        args.output,
        args.dataset,
        args.fmt,
        annotations=args.annotations,
        gt_json=args.gt_json,
        split_train=args.split_train,
        split_test=args.split_test,
        features_file=args.features,
        features_dirs=args.features_dir,
        rgb_dirs=args.rgb_dir,
        flow_dirs=args.flow_dir,
        no_features=args.no_features,
        durations=load_durations(args.durations) if args.durations else None,
        classes=read_class_list(args.classes) if args.classes else None,
        video_labels=args.video_labels,
        feature_dim=args.feature_dim,
        ambiguous=args.ambiguous,
    )
    print(format_summary(summary))
    return 0


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", required=True, type=Path, help="folder of <video>.mp4")
    parser.add_argument("--output", required=True, type=Path, help="folder for rgb/<video>.npy and flow/<video>.npy")
    parser.add_argument("--rgb-weights", required=True, type=Path, help="I3D RGB state dict (rgb_imagenet.pt style)")
    parser.add_argument("--flow-weights", required=True, type=Path, help="I3D flow state dict (flow_imagenet.pt style)")
    parser.add_argument("--ext", default="mp4", help="video file extension (default: mp4)")
    parser.add_argument("--video", action="append", help="extract only this video id; repeatable")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=8, help="snippets per network forward")
    parser.add_argument("--resize", type=int, default=256, help="shorter side in pixels before the crop")
    parser.add_argument("--crop", type=int, default=224, help="centre crop in pixels (the I3D input)")
    parser.add_argument("--log", type=Path, help="log file (default: OUTPUT/extract.log)")


def run_extract(args: argparse.Namespace) -> int:
    from .extraction import ExtractionSettings, extract_videos, find_videos

    setup_logging(args.log if args.log is not None else args.output / "extract.log")
    settings = ExtractionSettings(resize=args.resize, crop=args.crop)
    videos = find_videos(args.videos, args.ext, args.video)
    manifest = extract_videos(
        videos, args.output, args.rgb_weights, args.flow_weights, settings, args.device, args.batch_size
    )
    snippets = sum(manifest["videos"].values())
    print(f"{len(manifest['videos'])} videos, {snippets} snippets: {args.output}/rgb, {args.output}/flow")
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
    p_extract = sub.add_parser("extract", help="I3D RGB + flow features from mp4 files (per-video .npy)")
    add_extract_arguments(p_extract)
    p_extract.set_defaults(handler=run_extract)
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
