"""The training loop of one seed: build the base method, its objective and its sampler, run the
configured iterations on device-built batches, keep checkpoints and the resume state, then run
the *final* model once on the test split.

Nothing is chosen on the test split.  Accelerate carries the device placement (CPU, one GPU,
or several with ``accelerate launch``: each process draws its own batches, gradients are
averaged, the main process evaluates and writes).  The loss is checked for finiteness on the
device and read on the host only at log and checkpoint iterations, so the loop never waits
for the GPU.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .data import LoadedData, check_text_priors_classes
from .inference import average_map, detect, evaluate_model
from .models import build_base_method
from .models.base import base_method_of
from .objectives import build_objective
from .progress import Progress, make_progress
from .resume import restore_or_start, run_state, save_resume_state
from .run_files import write_evaluation, write_metrics_csv
from .sampler import BatchSampler
from .seed_run import SeedRun, TrainingError

log = logging.getLogger("wtal_training")

__all__ = ["SeedRun", "TrainingError", "setup_seed_run", "train_seed"]


def train_seed(
    data: LoadedData,
    config: Any,
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
    data: LoadedData, config: Any, seed: int, output_dir: str | Path, accelerator: Any, text_priors: Any
) -> SeedRun:
    """Seed the random streams, then build the base method, its objective and the sampler."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank = accelerator.process_index if accelerator is not None else 0
    torch.manual_seed(seed + 1000 * rank)
    np.random.seed(seed)
    check_text_priors_classes(text_priors, data.gt["classes"])
    model = build_base_method(config, data.train.feature_dim, data.num_classes).to(data.train.device)
    objective = build_objective(config, model, text_priors, accelerator, seed=seed, data=data)
    sampler = model.training_sampler(data.train, config, seed + 1000 * rank)  # the method's own, if any
    if sampler is None:
        sampler = BatchSampler(
            data.train, config.data.batch_size, config.data.num_similar, config.data.max_seqlen, seed + 1000 * rank
        )
    is_main = accelerator is None or accelerator.is_main_process
    return SeedRun(data, config, seed, output_dir, accelerator, objective, sampler, is_main)


def run_training_loop(run: SeedRun, progress: bool) -> float:
    """Iterations ``done + 1 .. iterations``; returns the training seconds, earlier attempts included.

    Checkpoint iterations: every ``checkpoint_every``-th, and (see
    :func:`wall_time_checkpoints`) the first one after ``checkpoint_minutes`` of wall time
    without a resume state.
    """
    config = run.config
    reporter = make_progress(f"seed {run.seed}", run.done, config.optimiser.iterations, progress, run.is_main)
    start = time.perf_counter()
    first_bad = torch.zeros((), dtype=torch.long, device=run.device)  # first non-finite iteration, 0: none
    every_seconds = wall_time_checkpoints(run)
    last_state = wall_clock()  # when the last resume state was written (or this attempt began)
    try:
        for iteration in range(run.done + 1, config.optimiser.iterations + 1):
            at_checkpoint = iteration % config.output.checkpoint_every == 0 or (
                every_seconds is not None
                and iteration < config.optimiser.iterations  # the final state is finish_seed's
                and wall_clock() - last_state >= every_seconds
            )
            at_log = iteration % config.output.log_every == 0 or iteration == config.optimiser.iterations
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
    ``checkpoint_every`` boundaries (``output.checkpoint_minutes``), or ``None``: off.

    This gives short, slow runs (a 400-iteration CPU run with ``checkpoint_every: 500``)
    resume points.  Such an iteration is a checkpoint boundary like any other (loss checked
    for finiteness, weights kept as the last good ones, state written); writing the state
    only reads the training state, so the run computes the same with or without it.

    Only in a single-process run: every process must agree on which iterations are
    checkpoints, and wall clocks differ between processes, so a multi-process run would
    need the main process's decision broadcast, a device round trip at every iteration.
    Multi-process runs are GPU runs, fast enough for ``checkpoint_every`` alone.
    """
    minutes = run.config.output.checkpoint_minutes
    if not minutes or run.processes > 1:
        return None
    return 60.0 * float(minutes)


def scale_learning_rate(run: SeedRun, iteration: int) -> None:
    """A method sampler's learning-rate schedule (:meth:`.sampler.Sampler.learning_rate_scale`):
    every optimizer group holding only the base method's parameters gets its initial rate
    times the scale; plug-in groups keep theirs."""
    scale = run.sampler.learning_rate_scale(iteration)
    if scale is None:
        return
    base = base_method_of(run.objective.inference_model())
    own = {id(p) for p in base.parameters()} if base is not None else set()
    for optimizer in run.objective.optimizers().values():
        for group in optimizer.param_groups:
            if group["params"] and all(id(p) in own for p in group["params"]):
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * float(scale)


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
        write_metrics_csv(run.output_dir / "metrics.csv", run.rows)


def checkpoint_boundary(run: SeedRun, iteration: int, seconds: float) -> None:
    """Keep these weights as the last good ones and write the resume state (the final
    iteration's is written by :func:`finish_seed`, after the final checkpoint)."""
    run.last_good = (iteration, run.inference_weights())
    if run.is_main and iteration < run.config.optimiser.iterations:
        save_resume_state(run.resume_path, run_state(run, iteration, seconds))


def checkpoint_metadata(run: SeedRun, iteration: int, status: str) -> dict[str, Any]:
    """What a checkpoint stores beside its weights (see :mod:`.checkpoint`)."""
    config, data = run.config, run.data
    return {
        "config": config.to_dict(),
        "method": config.method,
        "classes": data.gt["classes"],
        "feature_dim": data.train.feature_dim,
        "dataset": data.gt["dataset"],
        "seed": run.seed,
        "iteration": iteration,
        "status": status,
        "snippet_seconds": data.gt["snippet_seconds"],
        "objective": run.objective.name,  # it rebuilds the inference model (trained_model.py)
    }


def stop_at_last_good(run: SeedRun, exc: TrainingError) -> NoReturn:
    """Write the last good weights as the checkpoint (status "stopped") and re-raise."""
    good_iter, good_state = run.last_good
    inference = copy.deepcopy(run.objective.inference_model()).cpu()
    inference.load_state_dict(good_state)
    if run.is_main:
        save_checkpoint(run.checkpoint_path, inference, checkpoint_metadata(run, good_iter, f"stopped: {exc}"))
        write_metrics_csv(run.output_dir / "metrics.csv", run.rows)
        run.tensorboard.close()
    raise TrainingError(
        f"seed {run.seed}: {exc}; kept the last good checkpoint (iteration {good_iter}) in {run.checkpoint_path}"
    ) from exc


def finish_seed(run: SeedRun, train_seconds: float, score: bool = True) -> dict[str, Any]:
    """Final checkpoint and resume state, then one evaluation of the final model on the test
    split (predictions and timelines; with ``score`` also its mAP, ``map.json``)."""
    config, seed, output_dir = run.config, run.seed, run.output_dir
    result: dict[str, Any] = {
        "seed": seed,
        "iterations": config.optimiser.iterations,
        "train_seconds": round(train_seconds, 3),
        "iterations_per_second": round(config.optimiser.iterations / max(train_seconds, 1e-9), 3),
    }
    if run.done:
        result["resumed_after_iteration"] = run.done
    if not run.is_main:
        return result
    inference = run.objective.inference_model()
    save_checkpoint(run.checkpoint_path, inference, checkpoint_metadata(run, config.optimiser.iterations, "final"))
    if run.done < config.optimiser.iterations:  # kept, so a rerun of a finished run is not retrained
        save_resume_state(run.resume_path, run_state(run, config.optimiser.iterations, train_seconds))
    write_metrics_csv(output_dir / "metrics.csv", run.rows)
    extra = {"seed": seed, "iterations": config.optimiser.iterations}
    test, gt = run.data.test, run.data.gt
    if not score:
        start = time.perf_counter()
        outputs, predictions = detect(inference, test, gt, config)
        eval_seconds = round(time.perf_counter() - start, 3)
        write_evaluation(
            output_dir, run.data, config, outputs, predictions, None, {**extra, "eval_seconds": eval_seconds}
        )
        run.tensorboard.close()
        result["eval_seconds"] = eval_seconds
        return result
    outputs, predictions, metrics, eval_seconds = evaluate_model(inference, test, gt, config)
    write_evaluation(
        output_dir, run.data, config, outputs, predictions, metrics, {**extra, "eval_seconds": round(eval_seconds, 3)}
    )
    final = {f"test_final/mAP@{thr}": value for thr, value in metrics["mAP"].items()}
    final.update({f"test_final/average_mAP@{rng}": value for rng, value in average_map(metrics).items()})
    run.tensorboard.scalars(final, config.optimiser.iterations)
    run.tensorboard.close()
    result.update(
        {"mAP": metrics["mAP"], "average_mAP": metrics["average_mAP"], "eval_seconds": round(eval_seconds, 3)}
    )
    return result
