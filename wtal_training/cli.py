"""``python -m wtal_training train|evaluate|predict`` (console script ``mllm4wtal-train``).

``train`` reads the user's config layers and the data set's ground truth once each, builds the
run's config and calls :func:`.experiment.run_experiment` (or :func:`.experiment.run_single_seed`
with ``--run-dir``); ``evaluate`` and ``predict`` reload a checkpoint
(:func:`.trained_model.load_trained_model`) and run the one inference path
(:func:`.inference.detect`): ``evaluate`` on a data set's test split, then scores it;
``predict`` on any videos' features (:mod:`.predict`).  Errors become exit codes
in :func:`wtal_common.cli.run_cli` (2: bad data, checkpoint or config; 3: training stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wtal_common.cli import EXIT_CODES_HELP, program_name, run_cli
from wtal_common.errors import ConfigError
from wtal_common.logs import setup_logging
from wtal_data.canonical import dataset_family, load_ground_truth

from .config import build_config, user_layers

DESCRIPTION = (
    "Train a weakly supervised temporal action localization model (CO2-Net, DELU, DDG-Net, UM or Zhou et al. 2023, optionally with the "
    "MLLM4WTAL modules) for one or more seeds, each evaluated once at its final checkpoint on the test split; "
    "re-evaluate a saved checkpoint; or find the actions in new videos' features with one."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("wtal_training", "mllm4wtal-train"), description=DESCRIPTION, epilog=EXIT_CODES_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train seeds, evaluate each final checkpoint on the test split",
        description="Train each seed for the configured iterations and evaluate its final checkpoint once on "
        "the test split (no model selection on it). Writes OUTPUT_DIR/seed{n}/ per seed and "
        "OUTPUT_DIR/results.json with the mean and sample std over seeds.",
        epilog=EXIT_CODES_HELP,
    )
    train.add_argument("--data", required=True, help="canonical data set folder")
    train.add_argument("--method", required=True, help="base method: co2net | delu | ddgnet | um | zhou2023")
    train.add_argument("--modules", nargs="*", default=None, help="MLLM4WTAL plug-ins (e.g. ksm csr dpid loc)")
    train.add_argument("--text-priors", default=None, help="text-priors folder (needed with --modules)")
    train.add_argument("--config", default=None, help="YAML file of config fields")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field: dotted (optimiser.lr=1e-4, mllm4wtal.lambda1=2) or flat (lr=1e-4)",
    )
    train.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="training iterations (default: the method's; 0: evaluate the initial weights)",
    )
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    where = train.add_mutually_exclusive_group(required=True)
    where.add_argument("--output-dir", help="folder for the seeds' outputs (OUTPUT_DIR/seed{n}/) and results.json")
    where.add_argument(
        "--run-dir",
        help="one seed (--seeds N) straight into RUN_DIR: checkpoint, test predictions, timelines, run.json; "
        "no mAP (the workflow's evaluation stage scores the predictions)",
    )
    train.add_argument("--log", default=None, help="log file (default: OUTPUT_DIR/train.log)")
    train.add_argument("--no-progress", action="store_true", help="hide tqdm bars")
    train.add_argument(
        "--restart",
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start every seed over instead of resuming from OUTPUT_DIR/seed{n}/resume.pt",
    )
    ev = sub.add_parser(
        "evaluate",
        help="re-run inference of a checkpoint on the test split",
        description="Load a checkpoint written by train, run inference on the data set's test split and write "
        "predictions.json and map.json to OUTPUT_DIR.",
        epilog=EXIT_CODES_HELP,
    )
    ev.add_argument("--data", required=True, help="canonical data set folder (the classes must match)")
    ev.add_argument("--checkpoint", required=True, help="checkpoint.safetensors written by train")
    ev.add_argument("--output-dir", required=True, help="folder for predictions.json and map.json")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _proposal_source_option(ev)
    ev.add_argument(
        "--no-score",
        dest="score",
        action="store_false",
        help="write predictions.json and timelines only (score them with `python -m evaluation`)",
    )
    ev.add_argument("--log", default=None, help="log file (default: OUTPUT_DIR/evaluate.log)")
    _predict_parser(sub)
    return parser


def _proposal_source_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proposal-source",
        choices=["auto", "head", "base", "merge"],
        default=None,
        help="which proposals a plug-in model's inference uses (default: auto = the localization head when "
        "there is one, the paper's default, else the base method's; merge = head and base, rank-normalised)",
    )


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    from .predict import DEFAULT_TOP_N

    pr = sub.add_parser(
        "predict",
        help="find the actions in new videos with a trained checkpoint",
        description="Run a checkpoint written by train on videos' I3D features with the inference and "
        "post-processing of evaluate, and write each video's top detections (segments in seconds, the "
        "checkpoint's class names) in the ActivityNet results format.",
        epilog=EXIT_CODES_HELP,
    )
    pr.add_argument("--checkpoint", required=True, help="checkpoint.safetensors written by train")
    pr.add_argument(
        "--features",
        required=True,
        nargs="+",
        metavar="PATH",
        help="per-video <video>.npy (snippets x dims), a folder of them, the OUTPUT folder of "
        "`python -m wtal_data extract` (rgb/ + flow/), or a canonical data set folder (all its videos)",
    )
    pr.add_argument("--subset", default=None, help="only this subset of a canonical data set (e.g. test)")
    pr.add_argument(
        "--snippet-seconds",
        type=float,
        default=None,
        help="seconds per feature snippet (default: what the inputs record, else the checkpoint's; "
        "I3D at 25 fps, 16 frames: 0.64)",
    )
    pr.add_argument(
        "--top-n", type=int, default=DEFAULT_TOP_N, help=f"detections kept per video (default {DEFAULT_TOP_N}; 0: all)"
    )
    pr.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="drop detections scoring below this (the method's ranking score, not a probability; default: none)",
    )
    pr.add_argument("--output", required=True, help="detections JSON file to write")
    pr.add_argument("--timelines", default=None, metavar="DIR", help="write DIR/<video>.png per video")
    pr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _proposal_source_option(pr)
    pr.add_argument("--log", default=None, help="log file (default: the --output file with the suffix .log)")


def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import run_experiment, run_single_seed

    if args.run_dir is not None and len(args.seeds) != 1:
        raise ConfigError(f"--run-dir trains one seed; got --seeds {' '.join(map(str, args.seeds))}")
    explicit = {"iterations": args.iterations, "modules": args.modules}
    layers = user_layers(args.config, args.set, explicit, args.method)  # read once; a typo fails before data loads
    gt = load_ground_truth(args.data)  # read once: its family picks the defaults, then the data loads with it
    family = dataset_family(gt, str(Path(args.data) / "ground_truth.json"))
    config = build_config(args.method, family, layers=layers)
    common = (args.device, args.text_priors, not args.no_progress, args.resume)
    if args.run_dir is not None:
        run_single_seed(args.data, config, args.seeds[0], args.run_dir, *common, gt=gt)
        return 0
    results = run_experiment(args.data, config, args.seeds, args.output_dir, *common, gt=gt)
    if results:
        print(json.dumps({"mean": results["mean"], "std": results["std"]}, indent=1))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_data
    from .inference import detect, evaluate_model
    from .run_files import write_evaluation
    from .trained_model import load_trained_model, resolve_device

    device = resolve_device(args.device)
    trained = load_trained_model(args.checkpoint, device)
    source = args.proposal_source or trained.proposal_source
    data = load_data(args.data, device)
    trained.check_fits(data.gt["classes"], data.train.feature_dim, str(args.data))
    extra = {"checkpoint": str(args.checkpoint), "iterations": trained.metadata.get("iteration")}
    output_dir, config = Path(args.output_dir), trained.config
    if not args.score:
        outputs, predictions = detect(trained.model, data.test, data.gt, config, source)
        write_evaluation(output_dir, data, config, outputs, predictions, None, extra, source)
        return 0
    outputs, predictions, metrics, seconds = evaluate_model(trained.model, data.test, data.gt, config, source)
    extra["eval_seconds"] = round(seconds, 3)
    write_evaluation(output_dir, data, config, outputs, predictions, metrics, extra, source)
    print(json.dumps({"mAP": metrics["mAP"], "average_mAP": metrics["average_mAP"]}, indent=1))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from wtal_common.io import atomic_write_json

    from .plots import plot_timelines
    from .predict import predict
    from .trained_model import load_trained_model, resolve_device

    device = resolve_device(args.device)
    trained = load_trained_model(args.checkpoint, device)
    source = args.proposal_source or trained.proposal_source
    result = predict(
        trained, args.features, args.subset, args.snippet_seconds, args.top_n, args.min_score, device, source
    )
    atomic_write_json(Path(args.output), result.predictions)
    if args.timelines:
        plot_timelines(
            Path(args.timelines),
            result.gt,
            result.outputs,
            result.predictions,
            None,
            annotated_only=False,
            config=trained.config,
            source=source,
        )
    detections = sum(len(items) for items in result.predictions["results"].values())
    print(json.dumps({"videos": len(result.outputs), "detections": detections, "output": str(args.output)}, indent=1))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}


def _default_log(args: argparse.Namespace) -> Path:
    if args.command == "predict":
        return Path(args.output).with_suffix(".log")
    return Path(getattr(args, "run_dir", None) or args.output_dir) / f"{args.command}.log"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log or _default_log(args))
    return run_cli(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
