"""CLI: ``python -m prior_generation.text_priors {build,report} ...``.

Thin wrapper over :func:`build_text_priors` and :func:`compute_report`.  Input errors
print one line naming the file / setting and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from wtal_data.word_vectors import WordVectorError

from .build import build_text_priors
from .config import DEFAULT_SPACY_MODEL, TextPriorsConfig, TextPriorsError
from .report import compute_report, format_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prior_generation.text_priors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="descriptions Parquet -> text-priors folder")
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
    r = sub.add_parser("report", help="print coverage of a text-priors folder")
    r.add_argument("directory")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(args, "log", None):
        os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
        handlers.append(logging.FileHandler(args.log, encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    try:
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
    except (TextPriorsError, WordVectorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
