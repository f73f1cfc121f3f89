"""``python -m prior_generation`` (console script ``mllm4wtal-priors``): generate
descriptions, merge shards, build a tiny test model.

The commands call :func:`~prior_generation.generate.run_generate`,
:func:`~prior_generation.merge.merge_shards` and
:func:`~prior_generation.tiny_model.build_tiny_model`; errors become exit codes in
:func:`wtal_common.cli.run_cli` (0 success, 1 some rows failed, 2 bad input or config).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from wtal_common.cli import EXIT_CODES_HELP, program_name, run_cli
from wtal_common.errors import ConfigError
from wtal_common.logs import setup_logging

from .backends import BACKENDS
from .settings import DEFAULTS

log = logging.getLogger("prior_generation")

DESCRIPTION = (
    "Describe the training videos of a data set with a video MLLM (the paper's key and complete "
    "descriptions), one Parquet row per (video, class, kind); merge the shards of a run; build a tiny "
    "random-weight model for tests."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("prior_generation", "mllm4wtal-priors"), description=DESCRIPTION, epilog=EXIT_CODES_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "generate",
        help="describe every training video with an MLLM (or template/synthetic)",
        description="Describe each training video of the ground truth, for each of its labels, with a key and a "
        "complete description. Resumable: finished batches are kept in --work-dir and reused on a restart. "
        "Failed rows are recorded and the run goes on (exit 1 at the end), unless --fail-fast.",
        epilog=EXIT_CODES_HELP,
    )
    g.add_argument("--ground-truth", required=True, type=Path, help="canonical ground_truth.json (or its folder)")
    g.add_argument("--videos", type=Path, help="folder of {video_id}.mp4 (required by hf/vllm)")
    g.add_argument("--backend", default="hf", choices=BACKENDS.names())
    g.add_argument("--model", help="hub id or local folder (hf, vllm)")
    g.add_argument("--revision", help="hub revision of --model")
    g.add_argument("--scripts", type=Path, help="canonical/scripts.json (synthetic backend)")
    g.add_argument(
        "--num-frames",
        type=int,
        default=DEFAULTS.num_frames,
        help=f"frames shown per video (default {DEFAULTS.num_frames})",
    )
    g.add_argument(
        "--target-fps",
        type=float,
        help="sample at this rate instead of uniformly (at most --num-frames, spread over the video)",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS.batch_size,
        help=f"requests per generate call (default {DEFAULTS.batch_size})",
    )
    g.add_argument("--max-new-tokens-key", type=int, default=DEFAULTS.max_new_tokens_key)
    g.add_argument("--max-new-tokens-complete", type=int, default=DEFAULTS.max_new_tokens_complete)
    g.add_argument("--prompt-key", default=DEFAULTS.prompt_key, help="template with {cls}; default: the paper's")
    g.add_argument("--prompt-complete", default=DEFAULTS.prompt_complete, help="template with {cls}")
    g.add_argument("--seed", type=int, default=DEFAULTS.seed)
    g.add_argument("--shard", default="0/1", help="i/n: process videos i, i+n, ... of the sorted training set")
    g.add_argument("--mllm-name", help="short name of the MLLM, stored in the file metadata")
    g.add_argument("--output", required=True, type=Path, help="shard Parquet file to write")
    g.add_argument("--work-dir", type=Path, help="folder of part files for resuming (default OUTPUT.parts)")
    g.add_argument("--log", type=Path, help="log file (default OUTPUT.log)")
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failed row")
    g.add_argument("--device", default=DEFAULTS.device, help="hf: cpu, cuda or auto (default: cuda when available)")
    g.add_argument(
        "--dtype",
        default=DEFAULTS.dtype,
        help=f"hf: torch dtype name (default {DEFAULTS.gpu_dtype} on GPU, {DEFAULTS.cpu_dtype} on CPU)",
    )
    g.add_argument(
        "--prefetch",
        type=int,
        default=DEFAULTS.prefetch,
        help=f"videos decoded ahead in the background (default {DEFAULTS.prefetch})",
    )

    m = sub.add_parser(
        "merge",
        help="combine shard files into one, checked complete against the ground truth",
        description="Combine shard files into one descriptions file; refuses (exit 2, listing what is wrong) "
        "unless every (training video, label, kind) of the ground truth is there without errors.",
        epilog=EXIT_CODES_HELP,
    )
    m.add_argument("--ground-truth", required=True, type=Path)
    m.add_argument("--shards", required=True, nargs="+", type=Path)
    m.add_argument("--output", required=True, type=Path)
    m.add_argument("--allow-errors", action="store_true", help="keep failed rows instead of refusing to merge")
    m.add_argument("--log", type=Path, help="also append log messages to this file")

    t = sub.add_parser(
        "build-tiny-model",
        help="save a tiny random-weight video MLLM (for tests and benchmarks)",
        description="Save a tiny random-weight video MLLM with its processor: its text is random, "
        "but it runs through the same loading and generation code as a real model.",
        epilog=EXIT_CODES_HELP,
    )
    t.add_argument("--arch", required=True, choices=["llava_next_video", "qwen2_vl"])
    t.add_argument("--output", required=True, type=Path)
    t.add_argument("--seed", type=int, default=0)
    return parser


def _generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, parse_shard, run_generate

    if args.backend in ("hf", "vllm") and args.videos is None:
        raise ConfigError(f"--videos is required with --backend {args.backend}")
    config = GenerateConfig(
        ground_truth=args.ground_truth,
        videos=args.videos,
        output=args.output,
        backend=args.backend,
        model=args.model,
        revision=args.revision,
        scripts=args.scripts,
        num_frames=args.num_frames,
        target_fps=args.target_fps,
        batch_size=args.batch_size,
        max_new_tokens_key=args.max_new_tokens_key,
        max_new_tokens_complete=args.max_new_tokens_complete,
        prompt_key=args.prompt_key,
        prompt_complete=args.prompt_complete,
        seed=args.seed,
        shard=parse_shard(args.shard),
        mllm_name=args.mllm_name,
        work_dir=args.work_dir,
        fail_fast=args.fail_fast,
        prefetch=args.prefetch,
        device=args.device,
        dtype=args.dtype,
    )
    summary = run_generate(config)
    line = (
        f"{summary.output}: {summary.total} rows for {summary.videos} videos ({summary.reused} reused, "
        f"{summary.generated} generated, {summary.flagged} flagged, {len(summary.failures)} failed) "
        f"in {summary.seconds:.1f} s"
    )
    log.info(line)
    print(line)
    if summary.failures:
        print(f"{len(summary.failures)} failed row(s):", file=sys.stderr)
        for video_id, cls, kind, error in summary.failures[:50]:
            print(f"  {video_id} / {cls} / {kind}: {error}", file=sys.stderr)
        if len(summary.failures) > 50:
            print(f"  ... and {len(summary.failures) - 50} more (see the log)", file=sys.stderr)
        return 1
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .merge import merge_shards

    report = merge_shards(args.ground_truth, args.shards, args.output, allow_errors=args.allow_errors)
    print(f"{report['output']}: {report['rows']} rows ({report['failed']} failed)")
    return 0


def _tiny(args: argparse.Namespace) -> int:
    from .tiny_model import build_tiny_model

    path = build_tiny_model(args.arch, args.output, seed=args.seed)
    print(f"{path}: tiny random-weight {args.arch} model")
    return 0


def _log_file(args: argparse.Namespace) -> Path | None:
    if args.command == "generate":
        return args.log or Path(str(args.output) + ".log")
    return getattr(args, "log", None)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The progress bar owns the terminal: the console shows errors only, the log file everything.
    setup_logging(_log_file(args), console_level=logging.ERROR)
    command = {"generate": _generate, "merge": _merge, "build-tiny-model": _tiny}[args.command]
    return run_cli(lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
