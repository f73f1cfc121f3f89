"""The training engine: data on the device, the objective's steps, inference, scoring.

One seed = build the base method and its :class:`TrainingObjective`, run the configured
number of iterations on device-built batches, then run the *final* model on the test
split, post-process to seconds and score with :mod:`evaluation`.  Nothing is chosen on
the test split.  Accelerate carries the device placement (CPU, one GPU, or several with
``accelerate launch``: each process draws its own batches, gradients are averaged,
the main process evaluates and writes).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from wtal_common.errors import ConfigError, StageError
from wtal_common.io import atomic_write_bytes, atomic_write_json
from wtal_data.canonical import DatasetError, FeatureStore, check_consistency, load_ground_truth, videos_in_subset

from .checkpoint import code_version, save_checkpoint
from .config import TrainConfig
from .inference import infer
from .models import BaseMethod, Batch, build_base_method
from .models.base import base_method_of
from .postprocess import predictions_from_outputs
from .progress import Progress, make_progress
from .resume import RESUME_FILE, build_state, capture_rng, load_resume_state, restore_rng, save_resume_state
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
        self.optimizer = torch.optim.Adam(
            base_method.parameters(), lr=config.lr, weight_decay=config.weight_decay, **base_method.optimizer_options()
        )
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
        autocast = self.accelerator.autocast() if self.accelerator is not None else contextlib.nullcontext()
        with autocast:
            output = self.model(batch.features, batch.mask)
            loss, parts = self.base_method.loss(output, batch, iteration)
        # No finiteness check here: a `.item()` per iteration would stall a GPU pipeline.
        # The engine watches the returned "loss" tensor on the device (see run_training_loop).
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


def build_objective(
    config: TrainConfig,
    base_method: BaseMethod,
    text_priors: Any = None,
    accelerator: Any = None,
    seed: int = 0,
    data: LoadedData | None = None,
):
    """BaseObjective without plug-in modules, else the MLLM4WTAL objective (imported lazily).

    ``seed`` is the protocol seed: the plug-ins' text sampling follows it, so seeds differ
    in their text draws as they do in their batches.  ``data``: the run's data set (the
    localization head's pseudo-labels are built from its training videos).
    """
    if not config.modules:
        return BaseObjective(config, base_method, accelerator)
    from .mllm4wtal import build_mllm4wtal_objective

    if text_priors is None:
        raise ConfigError(f"modules {config.modules} need text priors: pass --text-priors DIR")
    # The plug-in objective runs its own optimizers outside accelerate: no gradient averaging
    # across processes and no autocast.  Refuse the first, say so for the second.
    if accelerator is not None and accelerator.num_processes > 1:
        raise ConfigError(
            f"modules {config.modules} do not support multi-process training yet "
            f"({accelerator.num_processes} processes): run them on one device"
        )
    if config.mixed_precision != "no":
        log.warning(
            "mixed_precision=%s is ignored with modules %s (they train in fp32)", config.mixed_precision, config.modules
        )
    return build_mllm4wtal_objective({**config.to_dict(), "seed": seed}, base_method, text_priors, config, data)


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


def detect(
    model: nn.Module, videos: DeviceFeatureSet, gt: dict, config: TrainConfig
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """The one inference path: model -> per-snippet outputs -> the method's proposals in seconds.

    Shared by the final evaluation of ``train``, ``evaluate`` and ``predict``, so a
    prediction on new videos is exactly what the evaluated numbers measure.  ``gt``
    supplies the class names, ``snippet_seconds`` and each video's ``duration``.
    Returns (outputs, ActivityNet results JSON).
    """
    outputs = infer(model, videos)
    return outputs, predictions_from_outputs(outputs, gt, config)


def evaluate_model(model: nn.Module, data: LoadedData, config: TrainConfig) -> tuple[dict, dict, dict, float]:
    """Inference + post-processing + mAP; returns (outputs, predictions, metrics, seconds)."""
    start = time.perf_counter()
    outputs, predictions = detect(model, data.test, data.gt, config)
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


@dataclass
class SeedRun:
    """One seed's training in progress: what setup, loop, checkpoints and final evaluation share."""

    data: LoadedData
    config: TrainConfig
    seed: int
    output_dir: Path
    accelerator: Any
    objective: Any  # BaseObjective or the MLLM4WTAL objective (modules, optimizers, step, inference_model)
    sampler: BatchSampler
    is_main: bool
    done: int = 0  # iterations finished before this process started (resumed), else 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows so far
    pending: dict[str, list] = field(default_factory=dict)  # log values not yet averaged into a row
    seconds_before: float = 0.0  # training time of the attempts this one resumes
    last_good: tuple[int, dict[str, torch.Tensor]] = (0, {})  # weights kept for a non-finite stop
    tensorboard: TensorBoardLog | None = None

    @property
    def device(self) -> torch.device:
        return self.data.train.device

    @property
    def resume_path(self) -> Path:
        return self.output_dir / RESUME_FILE

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes if self.accelerator is not None else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0


class TensorBoardLog:
    """A seed's TensorBoard scalars: the events file is opened on the first write and
    flushed after each one, so a killed run leaves no events file without scalars.

    A fresh start removes the events files of an abandoned attempt; a resumed run opens
    with ``purge_step`` so TensorBoard hides what the killed attempt logged after the
    resumed iteration.  Disabled (a no-op) off the main process and when re-evaluating
    a finished run, whose scalars are already there.
    """

    def __init__(self, directory: Path, resumed_at: int, enabled: bool) -> None:
        self.directory, self.resumed_at, self.enabled = directory, resumed_at, enabled
        self.writer = None
        if enabled and resumed_at == 0:
            for stale in directory.glob("events.out.tfevents.*"):
                stale.unlink()

    def scalars(self, values: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.resumed_at + 1 if self.resumed_at else None
            self.writer = SummaryWriter(log_dir=str(self.directory), purge_step=purge)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def train_seed(
    data: LoadedData,
    config: TrainConfig,
    seed: int,
    output_dir: str | Path,
    accelerator: Any = None,
    text_priors: Any = None,
    progress: bool = True,
    resume: bool = True,
    score: bool = True,
) -> dict[str, Any]:
    """Train one seed and evaluate its final checkpoint; write everything under ``output_dir``.

    ``score=False`` writes the final model's predictions but no ``map.json``: the workflow
    scores them in its own evaluation stage, so each run has exactly one mAP file.

    With ``resume`` (the default) a run continues from ``output_dir/resume.pt`` when that
    belongs to the same experiment: a killed run goes on from its last checkpoint boundary
    as if never stopped, a finished one is re-evaluated, not retrained.  ``resume=False``
    (``--restart``) starts over.  ``progress``: a bar on a terminal (see :mod:`.progress`).
    """
    run = setup_seed_run(data, config, seed, output_dir, accelerator, text_priors)
    restore_or_start(run, resume)
    train_seconds = run_training_loop(run, progress)
    return finish_seed(run, train_seconds, score)


def setup_seed_run(
    data: LoadedData, config: TrainConfig, seed: int, output_dir: str | Path, accelerator: Any, text_priors: Any
) -> SeedRun:
    """Seed the random streams, then build the base method, its objective and the sampler."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank = accelerator.process_index if accelerator is not None else 0
    torch.manual_seed(seed + 1000 * rank)
    np.random.seed(seed)
    if text_priors is not None and list(text_priors.classes) != list(data.gt["classes"]):
        from prior_generation.text_priors import ClassOrderError  # label index c must be class c of the priors

        raise ClassOrderError(
            f"text priors classes {list(text_priors.classes)} != data set classes {data.gt['classes']}"
        )
    model = build_base_method(config, data.train.feature_dim, data.num_classes).to(data.train.device)
    objective = build_objective(config, model, text_priors, accelerator, seed=seed, data=data)
    sampler = model.training_sampler(data.train, config, seed + 1000 * rank)  # the method's own, if any
    if sampler is None:
        sampler = BatchSampler(data.train, config.batch_size, config.num_similar, config.max_seqlen, seed + 1000 * rank)
    is_main = accelerator is None or accelerator.is_main_process
    return SeedRun(data, config, seed, output_dir, accelerator, objective, sampler, is_main)


def run_identity(run: SeedRun) -> dict[str, Any]:
    """What a resume state must match: same config, seed, data set and process count.

    ``checkpoint_minutes`` is left out: it decides only when states are written, not what
    training computes, so a rerun may change it and still resume (and states written before
    the field existed still match).
    """
    train_ids = "\n".join(run.data.train.video_ids).encode()
    config = {k: v for k, v in run.config.to_dict().items() if k != "checkpoint_minutes"}
    return {
        "config": config,
        "seed": run.seed,
        "dataset": run.data.gt["dataset"],
        "classes": list(run.data.gt["classes"]),
        "feature_dim": run.data.train.feature_dim,
        "train_videos": hashlib.sha256(train_ids).hexdigest(),
        "processes": run.processes,
    }


def restore_or_start(run: SeedRun, resume: bool) -> None:
    """Continue from the seed's resume state when asked for and it matches; log which."""
    config, path = run.config, run.resume_path
    found = path.exists()  # looked at before the barrier: the main process may remove it after
    state = load_resume_state(path, run_identity(run)) if resume else None
    if run.accelerator is not None:
        run.accelerator.wait_for_everyone()  # every process has read the state before it may go
    if state is None:
        if found and run.is_main:
            if not resume:
                log.info("seed %d: --restart: removing %s", run.seed, path)
            path.unlink()
        # resuming, but nothing to resume: say so, a rerun must not start over silently
        missing = f"no resume state in {run.output_dir}: " if resume and not found else ""
        if config.iterations:
            log.info("seed %d: %sstarting at iteration 1 of %d", run.seed, missing, config.iterations)
        else:
            log.info("seed %d: %s0 iterations: the initial weights are the checkpoint", run.seed, missing)
    else:
        apply_resume_state(run, state)
        if run.done >= config.iterations:
            log.info(
                "seed %d: %s holds a finished run (%d of %d iterations): not retrained, re-evaluating its "
                "final weights (--restart trains again)",
                run.seed,
                path,
                run.done,
                config.iterations,
            )
        else:
            log.info(
                "seed %d: resuming from %s at iteration %d of %d (--restart starts over)",
                run.seed,
                path,
                run.done + 1,
                config.iterations,
            )
    run.last_good = (run.done, inference_state(run))
    run.tensorboard = TensorBoardLog(
        run.output_dir / "tensorboard", run.done, enabled=run.is_main and run.done < config.iterations
    )


def apply_resume_state(run: SeedRun, state: dict[str, Any]) -> None:
    """Load weights, optimizer and scaler states, random streams and metrics into ``run``."""
    if state["code_version"] != code_version():
        log.warning(
            "seed %d: resuming a run started with code %s under code %s",
            run.seed,
            state["code_version"],
            code_version(),
        )
    try:
        for name, module in run.objective.modules().items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in run.objective.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        scaler = _grad_scaler(run)
        if scaler is not None and state["grad_scaler"] is not None:
            scaler.load_state_dict(state["grad_scaler"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise DatasetError(
            f"{run.resume_path}: does not fit this run's modules ({exc}); delete it or pass --restart"
        ) from exc
    run.done = int(state["iteration"])
    if run.rank == 0:
        restore_rng(state["rng"], run.sampler.generator, run.device)
    else:  # only the main process's streams are saved: the others draw fresh, seeded ones
        fresh = (run.seed + 1000 * run.rank) * 1_000_003 + run.done
        torch.manual_seed(fresh)
        run.sampler.generator.manual_seed(fresh)
    if hasattr(run.sampler, "load_state_dict") and state.get("sampler") is not None:
        run.sampler.load_state_dict(state["sampler"])
    if hasattr(run.objective, "load_state_dict") and state.get("objective") is not None:
        run.objective.load_state_dict(state["objective"])
    run.rows = list(state["rows"])
    run.pending = {k: [v.to(run.device) for v in values] for k, values in state["pending"].items()}
    run.seconds_before = float(state["train_seconds"])


def run_training_loop(run: SeedRun, progress: bool) -> float:
    """Iterations ``done + 1 .. iterations``; returns the training seconds, earlier attempts included.

    The loss is checked for finiteness on the device and read on the host only at log
    and checkpoint iterations, so the loop never waits for the GPU.  Checkpoint iterations:
    every ``checkpoint_every``-th, and (see :func:`wall_time_checkpoints`) the first one
    after ``checkpoint_minutes`` of wall time without a resume state.
    """
    config = run.config
    reporter = make_progress(f"seed {run.seed}", run.done, config.iterations, progress, run.is_main)
    start = time.perf_counter()
    first_bad = torch.zeros((), dtype=torch.long, device=run.device)  # first non-finite iteration, 0: none
    every_seconds = wall_time_checkpoints(run)
    last_state = wall_clock()  # when the last resume state was written (or this attempt began)
    try:
        for iteration in range(run.done + 1, config.iterations + 1):
            at_checkpoint = iteration % config.checkpoint_every == 0 or (
                every_seconds is not None
                and iteration < config.iterations  # the final state is finish_seed's
                and wall_clock() - last_state >= every_seconds
            )
            at_log = iteration % config.log_every == 0 or iteration == config.iterations
            try:
                scale_learning_rate(run, iteration)
                logs = run.objective.step(run.sampler.sample(), iteration)
                loss = logs.get("loss")
                if isinstance(loss, torch.Tensor):
                    bad_now = (first_bad == 0) & ~torch.isfinite(loss.detach().to(run.device))
                    first_bad = torch.where(bad_now, torch.full_like(first_bad, iteration), first_bad)
                if at_checkpoint or at_log:
                    bad = int(first_bad.item())
                    if bad:
                        raise TrainingError(f"non-finite loss at iteration {bad}")
            except TrainingError as exc:
                stop_at_last_good(run, exc)
            for k, v in logs.items():
                run.pending.setdefault(k, []).append(v)
            seconds = run.seconds_before + time.perf_counter() - start
            if at_log:
                log_metrics_row(run, iteration, seconds, reporter)
            if at_checkpoint:
                checkpoint_boundary(run, iteration, seconds)
                last_state = wall_clock()
            reporter.advance()
    finally:
        reporter.close()
    return run.seconds_before + time.perf_counter() - start


def wall_clock() -> float:
    """Seconds on a monotonic clock, for the wall-time checkpoints (a function of its own,
    so that tests can move time)."""
    return time.monotonic()


def wall_time_checkpoints(run: SeedRun) -> float | None:
    """Seconds of wall time after which a resume state is written even between
    ``checkpoint_every`` boundaries (``checkpoint_minutes``), or ``None``: off.

    This gives short, slow runs (a 400-iteration CPU run with ``checkpoint_every: 500``)
    resume points.  Such an iteration is a checkpoint boundary like any other (loss checked
    for finiteness, weights kept as the last good ones, state written); writing the state
    only reads the training state, so the run computes the same with or without it.

    Only in a single-process run: every process must agree on which iterations are
    checkpoints, and wall clocks differ between processes, so a multi-process run would
    need the main process's decision broadcast, a device round trip at every iteration.
    Multi-process runs are GPU runs, fast enough for ``checkpoint_every`` alone.
    """
    minutes = run.config.checkpoint_minutes
    if not minutes or run.processes > 1:
        return None
    return 60.0 * float(minutes)


def scale_learning_rate(run: SeedRun, iteration: int) -> None:
    """A method sampler's learning-rate schedule (``learning_rate_scale``, see
    ``BaseMethod.training_sampler``): every optimizer group holding only the base method's
    parameters gets its initial rate times the scale; plug-in groups keep theirs."""
    schedule = getattr(run.sampler, "learning_rate_scale", None)
    if schedule is None:
        return
    scale = float(schedule(iteration))
    base = base_method_of(run.objective.inference_model())
    own = {id(p) for p in base.parameters()} if base is not None else set()
    for optimizer in run.objective.optimizers().values():
        for group in optimizer.param_groups:
            if group["params"] and all(id(p) in own for p in group["params"]):
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * scale


def log_metrics_row(run: SeedRun, iteration: int, seconds: float, reporter: Progress) -> None:
    """Average the pending log values into a metrics.csv row; report progress."""
    row: dict[str, Any] = {"iteration": iteration, "elapsed_s": round(seconds, 3)}
    row.update(
        {
            k: float(torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in v]).mean())
            for k, v in run.pending.items()
        }
    )
    run.pending = {}
    run.rows.append(row)
    reporter.report(iteration, row)
    if run.is_main:
        run.tensorboard.scalars({f"train/{k}": v for k, v in row.items() if k != "iteration"}, iteration)
        _write_metrics_csv(run.output_dir / "metrics.csv", run.rows)


def checkpoint_boundary(run: SeedRun, iteration: int, seconds: float) -> None:
    """Keep these weights as the last good ones and write the resume state (the final
    iteration's is written by :func:`finish_seed`, after the final checkpoint)."""
    run.last_good = (iteration, inference_state(run))
    if run.is_main and iteration < run.config.iterations:
        save_resume_state(run.resume_path, resume_state(run, iteration, seconds))


def inference_state(run: SeedRun) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in run.objective.inference_model().state_dict().items()}


def resume_state(run: SeedRun, iteration: int, seconds: float) -> dict[str, Any]:
    state = _resume_state(run, iteration, seconds)
    if hasattr(run.sampler, "state_dict"):  # a method's own sampler with state (BaseMethod.training_sampler)
        state["sampler"] = run.sampler.state_dict()
    if hasattr(run.objective, "state_dict"):  # the plug-in objective's own (the head's pseudo-labels)
        state["objective"] = run.objective.state_dict()
    return state


def _resume_state(run: SeedRun, iteration: int, seconds: float) -> dict[str, Any]:
    return build_state(
        identity=run_identity(run),
        code_version=code_version(),
        iteration=iteration,
        modules=run.objective.modules(),
        optimizers=run.objective.optimizers(),
        grad_scaler=_grad_scaler(run),
        rng=capture_rng(run.sampler.generator, run.device),
        rows=run.rows,
        pending=run.pending,
        train_seconds=seconds,
    )


def _grad_scaler(run: SeedRun) -> Any:
    """accelerate's fp16 gradient scaler (its loss scale is state), if any."""
    return getattr(run.accelerator, "scaler", None) if run.accelerator is not None else None


def stop_at_last_good(run: SeedRun, exc: TrainingError) -> NoReturn:
    """Write the last good weights as the checkpoint (status "stopped") and re-raise."""
    good_iter, good_state = run.last_good
    inference = copy.deepcopy(run.objective.inference_model()).cpu()
    inference.load_state_dict(good_state)
    if run.is_main:
        save_checkpoint(
            run.output_dir / "checkpoint.safetensors",
            inference,
            _checkpoint_metadata(run.config, run.data, run.seed, good_iter, f"stopped: {exc}"),
        )
        _write_metrics_csv(run.output_dir / "metrics.csv", run.rows)
        run.tensorboard.close()
    raise TrainingError(
        f"seed {run.seed}: {exc}; kept the last good checkpoint (iteration {good_iter}) "
        f"in {run.output_dir / 'checkpoint.safetensors'}"
    ) from exc


def finish_seed(run: SeedRun, train_seconds: float, score: bool = True) -> dict[str, Any]:
    """Final checkpoint and resume state, then one evaluation of the final model on the test
    split (predictions and timelines; with ``score`` also its mAP, ``map.json``)."""
    config, seed, output_dir = run.config, run.seed, run.output_dir
    result: dict[str, Any] = {
        "seed": seed,
        "iterations": config.iterations,
        "train_seconds": round(train_seconds, 3),
        "iterations_per_second": round(config.iterations / max(train_seconds, 1e-9), 3),
    }
    if run.done:
        result["resumed_after_iteration"] = run.done
    if not run.is_main:
        return result
    inference = run.objective.inference_model()
    save_checkpoint(
        output_dir / "checkpoint.safetensors",
        inference,
        _checkpoint_metadata(config, run.data, seed, config.iterations, "final"),
    )
    if run.done < config.iterations:  # kept, so a rerun of a finished run is not retrained
        save_resume_state(run.resume_path, resume_state(run, config.iterations, train_seconds))
    _write_metrics_csv(output_dir / "metrics.csv", run.rows)
    extra = {"seed": seed, "iterations": config.iterations}
    if not score:
        start = time.perf_counter()
        outputs, predictions = detect(inference, run.data.test, run.data.gt, config)
        eval_seconds = round(time.perf_counter() - start, 3)
        write_evaluation(
            output_dir, run.data, config, outputs, predictions, None, {**extra, "eval_seconds": eval_seconds}
        )
        run.tensorboard.close()
        result["eval_seconds"] = eval_seconds
        return result
    outputs, predictions, metrics, eval_seconds = evaluate_model(inference, run.data, config)
    write_evaluation(
        output_dir,
        run.data,
        config,
        outputs,
        predictions,
        metrics,
        {**extra, "eval_seconds": round(eval_seconds, 3)},
    )
    final = {f"test_final/mAP@{thr}": value for thr, value in metrics["mAP"].items()}
    final.update({f"test_final/average_mAP@{rng}": value for rng, value in _averages(metrics).items()})
    run.tensorboard.scalars(final, config.iterations)
    run.tensorboard.close()
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
    metrics: dict | None,
    extra: dict[str, Any],
) -> None:
    """predictions.json, map.json (unless ``metrics`` is None: scored elsewhere) and a few
    timeline PNGs for one evaluated model."""
    from .plots import plot_timelines

    atomic_write_json(output_dir / "predictions.json", predictions)
    plot_timelines(output_dir / "timelines", data.gt, outputs, predictions, config.num_timeline_videos, config=config)
    if metrics is None:
        return
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


def _averages(metrics: dict) -> dict[str, float]:
    """``average_mAP`` as a dict of threshold range ("0.1:0.5") -> value."""
    return {str(k): float(v) for k, v in metrics["average_mAP"].items()}
