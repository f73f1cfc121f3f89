"""``python -m wtal_training train|evaluate``: thin wrappers over :mod:`.seeds`/:mod:`.engine`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from wtal_data.canonical import DatasetError, load_ground_truth

from .config import ConfigError, build_config, config_from_dict


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wtal_training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train seeds, evaluate each final checkpoint on the test split")
    train.add_argument("--data", required=True, help="canonical data set folder")
    train.add_argument("--method", required=True, help="base method: co2net | delu")
    train.add_argument("--modules", nargs="*", default=None, help="MLLM4WTAL plug-ins (e.g. ksm csr dpid loc)")
    train.add_argument("--text-priors", default=None, help="text-prior folder (needed with --modules)")
    train.add_argument("--config", default=None, help="YAML file of config fields")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config field")
    train.add_argument("--iterations", type=int, default=None)
    train.add_argument("--seeds", type=int, nargs="+", default=[0])
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    train.add_argument("--output-dir", required=True)
    train.add_argument("--log", default=None, help="log file (default: OUTPUT_DIR/train.log)")
    train.add_argument("--no-progress", action="store_true", help="hide tqdm bars")
    train.add_argument(
        "--restart",
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start every seed over instead of resuming from OUTPUT_DIR/seed{n}/resume.pt",
    )
    ev = sub.add_parser("evaluate", help="re-run inference of a checkpoint on the test split")
    ev.add_argument("--data", required=True)
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--output-dir", required=True)
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ev.add_argument("--log", default=None)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .seeds import run_experiment

    gt = load_ground_truth(args.data)
    config = build_config(
        args.method, gt["dataset"], args.config, args.set, iterations=args.iterations, modules=args.modules
    )
    results = run_experiment(
        args.data, config, args.seeds, args.output_dir, args.device, args.text_priors, not args.no_progress, args.resume
    )
    if results:
        print(json.dumps({"mean": results["mean"], "std": results["std"]}, indent=1))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .engine import evaluate_model, load_data, write_evaluation
    from .models import build_base_method

    state, meta = load_checkpoint(args.checkpoint)
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    data = load_data(args.data, device)
    if list(meta["classes"]) != list(data.gt["classes"]):
        raise DatasetError(
            f"{args.checkpoint}: trained on {len(meta['classes'])} classes, "
            f"{args.data} has {data.num_classes} (or a different class list)"
        )
    if int(meta["feature_dim"]) != data.train.feature_dim:
        raise DatasetError(f"{args.checkpoint}: feature_dim {meta['feature_dim']} != data {data.train.feature_dim}")
    config = config_from_dict(meta["config"])
    model = build_base_method(config, data.train.feature_dim, data.num_classes)
    if meta.get("inference_model", "base") != "base":
        from .mllm4wtal import build_inference_model  # the plug-in package rebuilds its inference wrapper

        model = build_inference_model(config, model)
    model.load_state_dict(state)
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
    log_file = args.log or (str(Path(args.output_dir) / f"{args.command}.log"))
    _setup_logging(log_file)
    try:
        return cmd_train(args) if args.command == "train" else cmd_evaluate(args)
    except (DatasetError, ConfigError) as exc:
        logging.getLogger("wtal_training").error("%s", exc)
        return 2
    except Exception as exc:  # TrainingError and friends: message, non-zero exit
        from .engine import TrainingError

        if isinstance(exc, TrainingError):
            logging.getLogger("wtal_training").error("%s", exc)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
