"""CLI: ``python -m prior_generation.text_priors {build,report} ...``.

Calls :func:`build_text_priors` and :func:`compute_report`; errors become exit codes in
:func:`wtal_common.cli.run_cli` (bad input: one line naming the file or setting, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys

from wtal_common.cli import EXIT_CODES_HELP, run_cli
from wtal_common.logs import setup_logging

from .build import build_text_priors
from .config import DEFAULT_SPACY_MODEL, TextPriorsConfig, TextPriorsError
from .report import compute_report, format_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prior_generation.text_priors",
        description="Turn the MLLM descriptions into the text priors training reads (tokens, vocabulary, "
        "word vectors, masked complete descriptions), and report on a text-priors folder.",
        epilog=EXIT_CODES_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build",
        help="descriptions Parquet -> text-priors folder",
        description="Tokenize the descriptions with spaCy, build the vocabulary and its word vectors, mask "
        "the complete descriptions, and write the text-priors folder (atomically, file by file).",
        epilog=EXIT_CODES_HELP,
    )
    b.add_argument("--descriptions", required=True, help="descriptions.parquet of the prior-generation stage")
    b.add_argument("--output-dir", required=True)
    # Defaults (None) come from TextPriorsConfig, or from --config when given.
    b.add_argument("--word-vectors", default=None, help="glove-6b-50d (default) or a GloVe/word2vec text file")
    b.add_argument("--spacy-model", default=None, help=f"any installed English spaCy pipeline ({DEFAULT_SPACY_MODEL})")
    b.add_argument("--max-vocab", type=int, default=None, help="vocabulary size including the 4 specials (8000)")
    b.add_argument("--max-tokens", type=int, default=None, help="words kept per description (64)")
    b.add_argument("--mask-ratio", type=float, default=None, help="share of words masked (1/3)")
    b.add_argument("--seed", type=int, default=None, help="masking and special-vector seed (0)")
    b.add_argument("--n-process", type=int, default=None, help="spaCy worker processes (1)")
    b.add_argument("--ground-truth", default=None, help="optional canonical ground_truth.json: class list and order")
    b.add_argument(
        "--config", default=None, help="optional JSON/YAML file of TextPriorsConfig fields (e.g. pos_weights)"
    )
    b.add_argument("--log", default=None, help="also log to this file")
    b.add_argument("--no-progress", action="store_true")
    r = sub.add_parser(
        "report",
        help="print coverage of a text-priors folder",
        description="Print how much of the descriptions a text-priors folder kept: usable rows, OOV rate, "
        "words per sentence, masked positions.",
        epilog=EXIT_CODES_HELP,
    )
    r.add_argument("directory", help="text-priors folder (holding meta.json)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _config(args: argparse.Namespace) -> TextPriorsConfig:
    fields: dict = {}
    if args.config:
        import yaml

        try:
            with open(args.config, encoding="utf-8") as handle:
                fields = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise TextPriorsError(f"{args.config}: cannot read config ({exc})") from exc
        except yaml.YAMLError as exc:
            raise TextPriorsError(f"{args.config}: not valid YAML/JSON ({exc})") from exc
        if not isinstance(fields, dict):
            raise TextPriorsError(f"{args.config}: must be a mapping of TextPriorsConfig fields")
        known = set(TextPriorsConfig.__dataclass_fields__)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise TextPriorsError(f"{args.config}: unknown field(s) {unknown}; known: {sorted(known)}")
    given = dict(
        word_vectors=args.word_vectors,
        spacy_model=args.spacy_model,
        max_vocab=args.max_vocab,
        max_tokens=args.max_tokens,
        mask_ratio=args.mask_ratio,
        seed=args.seed,
        n_process=args.n_process,
    )
    fields.update({k: v for k, v in given.items() if v is not None})
    try:
        return TextPriorsConfig(**fields)
    except TypeError as exc:
        raise TextPriorsError(f"bad text-priors config: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    if args.command == "build":
        meta = build_text_priors(
            args.descriptions,
            args.output_dir,
            _config(args),
            ground_truth=args.ground_truth,
            progress=not args.no_progress,
        )
        print(json.dumps({"output_dir": args.output_dir, "seconds": meta["seconds"], "counts": meta["counts"]}))
    else:
        report = compute_report(args.directory)
        print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(getattr(args, "log", None))
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
