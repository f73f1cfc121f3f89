"""``python -m wtal_training train|evaluate`` (console script ``mllm4wtal-train``).

``train`` calls :func:`.seeds.run_experiment`; ``evaluate`` reloads a checkpoint and runs
the inference and evaluation code of :mod:`.engine`.  Errors become exit codes in
:func:`wtal_common.cli.run_cli` (2: bad data, checkpoint or config; 3: training stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wtal_common.cli import EXIT_CODES_HELP, program_name, run_cli
from wtal_common.logs import setup_logging
from wtal_data.canonical import dataset_family, load_ground_truth

from .config import build_config, check_user_config, config_from_dict

DESCRIPTION = (
    "Train a weakly supervised temporal action localization model (CO2-Net or DELU, optionally with the "
    "MLLM4WTAL modules) for one or more seeds, each evaluated once at its final checkpoint on the test split; "
    "or re-evaluate a saved checkpoint."
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
    train.add_argument("--method", required=True, help="base method: co2net | delu")
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
    train.add_argument("--iterations", type=int, default=None, help="training iterations (default: the method's)")
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    train.add_argument("--output-dir", required=True, help="folder for the seeds' outputs and results.json")
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
    ev.add_argument("--log", default=None, help="log file (default: OUTPUT_DIR/evaluate.log)")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .seeds import run_experiment

    explicit = {"iterations": args.iterations, "modules": args.modules}
    check_user_config(args.config, args.set, **explicit)  # a typo fails here, before any data loads
    gt = load_ground_truth(args.data)
    family = dataset_family(gt, str(Path(args.data) / "ground_truth.json"))
    config = build_config(args.method, family, args.config, args.set, **explicit)
    results = run_experiment(
        args.data, config, args.seeds, args.output_dir, args.device, args.text_priors, not args.no_progress, args.resume
    )
    if results:
        print(json.dumps({"mean": results["mean"], "std": results["std"]}, indent=1))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError, load_checkpoint
    from .engine import evaluate_model, load_data, write_evaluation
    from .models import build_base_method

    state, meta = load_checkpoint(args.checkpoint)
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    data = load_data(args.data, device)
    if list(meta["classes"]) != list(data.gt["classes"]):
        raise CheckpointError(
            f"{args.checkpoint}: trained on {len(meta['classes'])} classes, "
            f"{args.data} has {data.num_classes} (or a different class list)"
        )
    if int(meta["feature_dim"]) != data.train.feature_dim:
        raise CheckpointError(f"{args.checkpoint}: feature_dim {meta['feature_dim']} != data {data.train.feature_dim}")
    config = config_from_dict(meta["config"])
    model = build_base_method(config, data.train.feature_dim, data.num_classes)
    if meta.get("inference_model", "base") != "base":
        from .mllm4wtal import build_inference_model  # the plug-in package rebuilds its inference wrapper

        model = build_inference_model(config, model)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing, unexpected or mis-shaped weights
        raise CheckpointError(f"{args.checkpoint}: weights do not fit the {config.method} model ({exc})") from exc
    model.to(device)
    outputs, predictions, metrics, seconds = evaluate_model(model, data, config)
    write_evaluation(
        Path(args.output_dir),
        data,
        config,
        outputs,
        predictions,
        metrics,
        {"checkpoint": str(args.checkpoint), "iterations": meta.get("iteration"), "eval_seconds": round(seconds, 3)},
    )
    print(json.dumps({"mAP": metrics["mAP"], "average_mAP": metrics["average_mAP"]}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log or (Path(args.output_dir) / f"{args.command}.log"))
    command = cmd_train if args.command == "train" else cmd_evaluate
    return run_cli(lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
