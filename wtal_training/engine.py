"""The training engine: data on the device, the objective's steps, inference, scoring.

One seed = build the base method and its :class:`TrainingObjective`, run the configured
number of iterations on device-built batches, then run the *final* model on the test
split, post-process to seconds and score with :mod:`evaluation`.  Nothing is chosen on
the test split.  Accelerate carries the device placement (CPU, one GPU, or several with
``accelerate launch``: each process draws its own batches, gradients are averaged,
the main process evaluates and writes).
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from wtal_common.errors import StageError
from wtal_common.io import atomic_write_bytes, atomic_write_json
from wtal_data.canonical import DatasetError, FeatureStore, check_consistency, load_ground_truth, videos_in_subset

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .models import BaseMethod, BaseOutput, Batch, build_base_method
from .postprocess import predictions_from_outputs
from .sampler import BatchSampler, DeviceFeatureSet

log = logging.getLogger("wtal_training")


class TrainingError(StageError):
    """Training stopped (e.g. a non-finite loss); the message names the iteration."""


@dataclass
class LoadedData:
    """A canonical data set read once: ground truth plus train/test features on a device."""

    directory: Path
    gt: dict
    train: DeviceFeatureSet
    test: DeviceFeatureSet

    @property
    def num_classes(self) -> int:
        return len(self.gt["classes"])


def load_data(directory: str | Path, device: torch.device | str) -> LoadedData:
    """Read and check a canonical data set; raise :class:`DatasetError` on bad input."""
    directory = Path(directory)
    gt = load_ground_truth(directory)
    store = FeatureStore.open(directory)
    check_consistency(gt, store, str(directory))
    if not gt["classes"]:
        raise DatasetError(f"{directory / 'ground_truth.json'}: empty class list")
    split = {}
    for subset in ("train", "test"):
        ids = videos_in_subset(gt, subset)
        if not ids:
            raise DatasetError(f"{directory / 'ground_truth.json'}: the '{subset}' split is empty")
        split[subset] = DeviceFeatureSet(store, gt, ids, device, source=f"{directory / 'features.npy'} ({subset})")
    unlabeled = [v for v in split["train"].video_ids if not gt["database"][v].get("labels")]
    if len(unlabeled) == len(split["train"]):
        raise DatasetError(f"{directory / 'ground_truth.json'}: no training video has a label")
    return LoadedData(directory, gt, split["train"], split["test"])


class BaseObjective:
    """A plain base method: one Adam step on its own loss per iteration."""

    def __init__(self, config: TrainConfig, base_method: BaseMethod, accelerator: Any = None) -> None:
        self.config = config
        self.base_method = base_method
        self.accelerator = accelerator
        self.optimizer = torch.optim.Adam(base_method.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.model: nn.Module = base_method
        if accelerator is not None:
            self.model, self.optimizer = accelerator.prepare(base_method, self.optimizer)

    def modules(self) -> dict[str, nn.Module]:
        return {"base": self.base_method}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"base": self.optimizer}

    def inference_model(self) -> nn.Module:
        return self.base_method

    def step(self, batch: Batch, iteration: int) -> dict[str, Any]:
        self.model.train()
        autocast = self.accelerator.autocast() if self.accelerator is not None else _nullcontext()
        with autocast:
            output = self.model(batch.features, batch.mask)
            loss, parts = self.base_method.loss(output, batch, iteration)
        # No finiteness check here: a `.item()` per iteration would stall a GPU pipeline.
        # The engine watches the returned "loss" tensor on the device (see train_seed).
        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
            if self.config.grad_clip > 0:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        else:
            loss.backward()
            if self.config.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach(), **parts}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def build_objective(
    config: TrainConfig, base_method: BaseMethod, text_priors: Any = None, accelerator: Any = None, seed: int = 0
):
    """BaseObjective without plug-in modules, else the MLLM4WTAL objective (imported lazily).

    ``seed`` is the protocol seed: the plug-ins' text sampling follows it, so seeds differ
    in their text draws as they do in their batches.
    """
    if not config.modules:
        return BaseObjective(config, base_method, accelerator)
    from .mllm4wtal import build_mllm4wtal_objective

    if text_priors is None:
        raise TrainingError(f"modules {config.modules} need text priors: pass --text-priors DIR")
    # The plug-in objective runs its own optimizers outside accelerate: no gradient averaging
    # across processes and no autocast.  Refuse the first, say so for the second.
    if accelerator is not None and accelerator.num_processes > 1:
        raise TrainingError(
            f"modules {config.modules} do not support multi-process training yet "
            f"({accelerator.num_processes} processes): run them on one device"
        )
    if config.mixed_precision != "no":
        log.warning(
            "mixed_precision=%s is ignored with modules %s (they train in fp32)", config.mixed_precision, config.modules
        )
    return build_mllm4wtal_objective({**config.to_dict(), "seed": seed}, base_method, text_priors)


@torch.inference_mode()
def infer(
    model: nn.Module, data: DeviceFeatureSet, max_snippets: int | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Run the inference model on every video of ``data``; per-video numpy outputs.

    Videos are sorted by length and packed into zero-padded chunks of at most
    ``max_snippets`` (B x T_max) snippets; the models mask padding, so the numbers
    equal those of one-video-at-a-time inference.
    """
    was_training = model.training
    model.eval()
    device = data.device
    if max_snippets is None:
        max_snippets = 262_144 if device.type == "cuda" else 16_384
    lengths = data.lengths.cpu().numpy()
    order = np.argsort(-lengths, kind="stable")
    results: dict[str, dict[str, np.ndarray]] = {}
    i = 0
    while i < len(order):
        t_max = int(lengths[order[i]])
        count = max(1, max_snippets // max(t_max, 1))
        chunk = order[i : i + count]
        i += len(chunk)
        idx = torch.as_tensor(chunk, device=device)
        lens = data.lengths[idx]
        steps = torch.arange(t_max, device=device).unsqueeze(0)
        mask = steps < lens.unsqueeze(1)
        rows = data.offsets[idx].unsqueeze(1) + torch.minimum(steps, lens.unsqueeze(1) - 1)
        feats = data.features.index_select(0, rows.reshape(-1)).reshape(len(chunk), t_max, -1)
        feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        out: BaseOutput = model(feats, mask)
        cas, att = out.cas.float().cpu().numpy(), out.attention.float().cpu().numpy()
        loc_s = out.extras.get("loc_scores")
        loc_o = out.extras.get("loc_offsets")
        loc_s = loc_s.float().cpu().numpy() if loc_s is not None else None
        loc_o = loc_o.float().cpu().numpy() if loc_o is not None else None
        for row, j in enumerate(chunk):
            n = int(lengths[j])
            entry = {"cas": cas[row, :n], "attention": att[row, :n]}
            if loc_s is not None and loc_o is not None:
                entry["loc_scores"], entry["loc_offsets"] = loc_s[row, :n], loc_o[row, :n]
            results[data.video_ids[j]] = entry
    model.train(was_training)
    return {vid: results[vid] for vid in data.video_ids}


def score_predictions(gt: dict, predictions: dict, config: TrainConfig) -> dict[str, Any]:
    """Official-protocol detection mAP on the test split (the ``evaluation`` package)."""
    from evaluation.detection import evaluate_detection

    return evaluate_detection(
        gt,
        predictions,
        subset="test",
        tiou_thresholds=list(config.tiou_thresholds),
        ambiguous=gt.get("ambiguous") or {},
        filter_ambiguous=bool(config.filter_ambiguous),
    )


def evaluate_model(model: nn.Module, data: LoadedData, config: TrainConfig) -> tuple[dict, dict, dict, float]:
    """Inference + post-processing + mAP; returns (outputs, predictions, metrics, seconds)."""
    start = time.perf_counter()
    outputs = infer(model, data.test)
    predictions = predictions_from_outputs(outputs, data.gt, config)
    metrics = score_predictions(data.gt, predictions, config)
    return outputs, predictions, metrics, time.perf_counter() - start


def _checkpoint_metadata(
    config: TrainConfig, data: LoadedData, seed: int, iteration: int, status: str
) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "method": config.method,
        "classes": data.gt["classes"],
        "feature_dim": data.train.feature_dim,
        "dataset": data.gt["dataset"],
        "seed": seed,
        "iteration": iteration,
        "status": status,
        "snippet_seconds": data.gt["snippet_seconds"],
        "inference_model": "base" if not config.modules else "mllm4wtal",
    }


def _write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def train_seed(
    data: LoadedData,
    config: TrainConfig,
    seed: int,
    output_dir: str | Path,
    accelerator: Any = None,
    text_priors: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one seed and evaluate its final checkpoint; write everything under ``output_dir``."""
    from torch.utils.tensorboard import SummaryWriter

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank = accelerator.process_index if accelerator is not None else 0
    is_main = accelerator is None or accelerator.is_main_process
    torch.manual_seed(seed + 1000 * rank)
    np.random.seed(seed)
    device = data.train.device
    if text_priors is not None and list(text_priors.classes) != list(data.gt["classes"]):
        from prior_generation.text_priors import ClassOrderError  # label index c must be class c of the priors

        raise ClassOrderError(
            f"text priors classes {list(text_priors.classes)} != data set classes {data.gt['classes']}"
        )
    model = build_base_method(config, data.train.feature_dim, data.num_classes).to(device)
    objective = build_objective(config, model, text_priors, accelerator, seed=seed)
    sampler = BatchSampler(data.train, config.batch_size, config.num_similar, config.max_seqlen, seed + 1000 * rank)
    writer = SummaryWriter(log_dir=str(output_dir / "tensorboard")) if is_main else None
    rows: list[dict[str, Any]] = []
    pending: dict[str, list] = {}
    last_good = (0, copy.deepcopy({k: v.detach().cpu() for k, v in objective.inference_model().state_dict().items()}))
    start = time.perf_counter()
    # First iteration whose loss was not finite (0: none), kept on the device and read only
    # at log and checkpoint times, so the loop never waits for the GPU.
    first_bad = torch.zeros((), dtype=torch.long, device=device)
    bar = tqdm(
        range(1, config.iterations + 1), desc=f"seed {seed}", disable=not (progress and is_main), mininterval=2.0
    )
    for iteration in bar:
        batch = sampler.sample()
        try:
            logs = objective.step(batch, iteration)
            loss = logs.get("loss")
            if isinstance(loss, torch.Tensor):
                bad_now = (first_bad == 0) & ~torch.isfinite(loss.detach().to(device))
                first_bad = torch.where(bad_now, torch.full_like(first_bad, iteration), first_bad)
            if (
                iteration % config.checkpoint_every == 0
                or iteration % config.log_every == 0
                or iteration == config.iterations
            ):
                bad = int(first_bad.item())
                if bad:
                    raise TrainingError(f"non-finite loss at iteration {bad}")
        except TrainingError as exc:
            good_iter, good_state = last_good
            inference = copy.deepcopy(objective.inference_model()).cpu()
            inference.load_state_dict(good_state)
            if is_main:
                save_checkpoint(
                    output_dir / "checkpoint.safetensors",
                    inference,
                    _checkpoint_metadata(config, data, seed, good_iter, f"stopped: {exc}"),
                )
                _write_metrics_csv(output_dir / "metrics.csv", rows)
            raise TrainingError(
                f"seed {seed}: {exc}; kept the last good checkpoint (iteration {good_iter}) "
                f"in {output_dir / 'checkpoint.safetensors'}"
            ) from exc
        for k, v in logs.items():
            pending.setdefault(k, []).append(v)
        if iteration % config.checkpoint_every == 0:
            last_good = (
                iteration,
                {k: v.detach().cpu().clone() for k, v in objective.inference_model().state_dict().items()},
            )
        if iteration % config.log_every == 0 or iteration == config.iterations:
            row = {"iteration": iteration, "elapsed_s": round(time.perf_counter() - start, 3)}
            row.update(
                {
                    k: float(torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in v]).mean())
                    for k, v in pending.items()
                }
            )
            pending = {}
            rows.append(row)
            if is_main:
                for k, v in row.items():
                    if k != "iteration":
                        writer.add_scalar(f"train/{k}", v, iteration)
                bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}")
                _write_metrics_csv(output_dir / "metrics.csv", rows)
    train_seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "seed": seed,
        "iterations": config.iterations,
        "train_seconds": round(train_seconds, 3),
        "iterations_per_second": round(config.iterations / max(train_seconds, 1e-9), 3),
    }
    if not is_main:
        return result
    inference = objective.inference_model()
    save_checkpoint(
        output_dir / "checkpoint.safetensors",
        inference,
        _checkpoint_metadata(config, data, seed, config.iterations, "final"),
    )
    outputs, predictions, metrics, eval_seconds = evaluate_model(inference, data, config)
    write_evaluation(
        output_dir,
        data,
        config,
        outputs,
        predictions,
        metrics,
        {"seed": seed, "iterations": config.iterations, "eval_seconds": round(eval_seconds, 3)},
    )
    for thr, value in metrics["mAP"].items():
        writer.add_scalar(f"test_final/mAP@{thr}", value, config.iterations)
    for rng, value in _averages(metrics).items():
        writer.add_scalar(f"test_final/average_mAP@{rng}", value, config.iterations)
    writer.close()
    result.update(
        {"mAP": metrics["mAP"], "average_mAP": metrics["average_mAP"], "eval_seconds": round(eval_seconds, 3)}
    )
    return result


def write_evaluation(
    output_dir: Path,
    data: LoadedData,
    config: TrainConfig,
    outputs: dict,
    predictions: dict,
    metrics: dict,
    extra: dict[str, Any],
) -> None:
    """predictions.json, map.json and a few timeline PNGs for one evaluated model."""
    from .plots import plot_timelines

    atomic_write_json(output_dir / "predictions.json", predictions)
    summary = {
        "protocol": "final checkpoint, evaluated once on the test split (no model selection on test)",
        **extra,
        "dataset": data.gt["dataset"],
        "synthetic": bool(data.gt.get("synthetic", False)),
        "mAP": metrics["mAP"],
        "average_mAP": metrics["average_mAP"],
        "per_class": metrics.get("per_class", {}),
    }
    atomic_write_json(output_dir / "map.json", summary)
    plot_timelines(output_dir / "timelines", data.gt, outputs, predictions, config.num_timeline_videos)


def _averages(metrics: dict) -> dict[str, float]:
    """``average_mAP`` as a dict of threshold range -> value (a bare number becomes "all")."""
    avg = metrics["average_mAP"]
    return {str(k): float(v) for k, v in avg.items()} if isinstance(avg, dict) else {"all": float(avg)}


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def finite_or_raise(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise TrainingError(f"{what} is not finite ({value})")
    return value
