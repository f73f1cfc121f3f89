"""``python -m wtal_data`` (console script ``mllm4wtal-data``): ingest real data,
extract I3D features, generate synthetic sets, summarize, export videos' features.

The commands call :mod:`.ingest`, :mod:`.synthetic` and :mod:`.export`; errors become exit codes in
:func:`wtal_common.cli.run_cli` (a :class:`DatasetError`, whose message names the file
and the video: exit 2, no traceback).  The ``synth`` subcommand's arguments belong to
:mod:`.synthetic`, imported only when that subcommand is asked for.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from wtal_common.cli import EXIT_CODES_HELP, program_name, run_cli
from wtal_common.logs import setup_logging

DESCRIPTION = (
    "Prepare data sets in the canonical layout every later stage reads: ingest a real data set's "
    "annotations and I3D features, generate a synthetic one, summarize a canonical folder, or export "
    "videos' features from one as per-video .npy files."
)


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

    features = FeatureOptions.from_args(args)
    reader = INGEST_FORMATS[args.fmt].from_args(args, features)
    summary = ingest(args.output, args.dataset, reader, features, ambiguous=args.ambiguous)
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

    settings = ExtractionSettings(resize=args.resize, crop=args.crop)
    videos = find_videos(args.videos, args.ext, args.video)
    manifest = extract_videos(
        videos, args.output, args.rgb_weights, args.flow_weights, settings, args.device, args.batch_size
    )
    snippets = sum(manifest["videos"].values())
    print(f"{len(manifest['videos'])} videos, {snippets} snippets: {args.output}/rgb, {args.output}/flow")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    from .canonical import SUBSETS

    parser.add_argument("--data", required=True, type=Path, help="canonical folder (holding ground_truth.json)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--video",
        dest="videos",
        action="extend",
        nargs="+",
        metavar="ID",
        help="video id to export; repeatable (--video A --video B, or --video A B)",
    )
    which.add_argument("--subset", choices=SUBSETS, help="export every video of this subset")
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        help="folder for <video>.npy per video, or, for one video, a file name ending in .npy",
    )


def run_export(args: argparse.Namespace) -> int:
    from .export import export_features, format_exported

    print(format_exported(export_features(args.data, args.output, args.videos, args.subset)))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from .ingest import format_summary, summarize

    summary = summarize(args.directory)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def run_videos(args: argparse.Namespace) -> int:
    from .ingest_wtalc import annotated_videos

    print(json.dumps(annotated_videos(args.annotations, args.dataset, args.subset)))
    return 0


def build_parser(with_synth: bool = False) -> argparse.ArgumentParser:
    """``with_synth`` loads the synthetic generator's own arguments (only when asked for)."""
    parser = argparse.ArgumentParser(
        prog=program_name("wtal_data", "mllm4wtal-data"), description=DESCRIPTION, epilog=EXIT_CODES_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_ingest = sub.add_parser(
        "ingest",
        help="convert a real data set's files into the canonical folder",
        description="Read one annotation layout (W-TALC or UM) and one feature layout, check them, and write "
        "the canonical folder: features first, ground_truth.json last, each atomically.",
        epilog=EXIT_CODES_HELP,
    )
    add_ingest_arguments(p_ingest)
    p_ingest.set_defaults(handler=run_ingest, log_default=lambda a: a.output / "ingest.log")
    p_extract = sub.add_parser(
        "extract",
        help="I3D RGB + flow features from mp4 files (per-video .npy)",
        description="Decode each video with decord at 25 fps, compute TV-L1 flow, run the I3D RGB and flow "
        "networks from local weight files on 16-frame snippets and write OUTPUT/rgb/<video>.npy and "
        "OUTPUT/flow/<video>.npy (the W-TALC convention, 1024 + 1024 dims). Resumes per video.",
        epilog=EXIT_CODES_HELP,
    )
    add_extract_arguments(p_extract)
    p_extract.set_defaults(handler=run_extract, log_default=lambda a: a.output / "extract.log")
    p_synth = sub.add_parser(
        "synth",
        help="generate a synthetic data set (thumos14-synth, demo; thumos14-vd with --config config/synthetic_vd.yaml)",
        description="Generate a synthetic data set on a real data set's structure (videos, durations, "
        "segments, classes): features, scripts and, optionally, rendered videos. Generated data, not a "
        "real benchmark.",
        epilog=EXIT_CODES_HELP,
        add_help=with_synth,
    )
    if with_synth:
        from . import synthetic

        synthetic.add_synth_arguments(p_synth)
        p_synth.set_defaults(handler=synthetic.synth, log_default=synthetic.default_log_file)
    p_export = sub.add_parser(
        "export",
        help="write videos' features from a canonical folder as <video>.npy (what `predict --features` reads)",
        description="Copy the features of the chosen videos (--video ID..., or --subset) of a canonical folder "
        "to one plain float32 .npy (snippets x dims) per video, atomically: OUTPUT/<video>.npy, or OUTPUT "
        "itself when it ends in .npy and one video is chosen. Ground truth is not exported.",
        epilog=EXIT_CODES_HELP,
    )
    add_export_arguments(p_export)
    p_export.set_defaults(handler=run_export, log_default=lambda a: None)
    p_summary = sub.add_parser(
        "summary",
        help="print counts per subset of a canonical folder",
        description="Print per subset the videos, segments, classes, ambiguous segments and snippets of a "
        "canonical folder.",
        epilog=EXIT_CODES_HELP,
    )
    p_summary.add_argument("directory", type=Path, help="canonical folder (holding ground_truth.json)")
    p_summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_summary.set_defaults(handler=run_summary, log_default=lambda a: None)
    p_videos = sub.add_parser(
        "videos",
        help="print the video ids of a W-TALC annotation folder as JSON (what the workflow checks before ingest)",
        description="Read a W-TALC <Name>-Annotations folder and print the sorted ids of its videos, all of "
        "them or one protocol subset's, as a JSON list.",
        epilog=EXIT_CODES_HELP,
    )
    p_videos.add_argument("--annotations", type=Path, required=True, help="<Name>-Annotations folder")
    p_videos.add_argument("--dataset", required=True, help="preset whose subset map applies (thumos14, activitynet12)")
    p_videos.add_argument("--subset", choices=["train", "test"], default=None, help="only this protocol subset")
    p_videos.set_defaults(handler=run_videos, log_default=lambda a: None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(with_synth=bool(argv) and argv[0] == "synth").parse_args(argv)
    log = getattr(args, "log", None)
    setup_logging(log if log is not None else args.log_default(args))
    return run_cli(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
