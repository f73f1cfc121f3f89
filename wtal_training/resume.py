"""The resume state of one seed: what a killed run needs to continue as if never stopped, and
how a run starts: from its matching state (:func:`restore_or_start`) or afresh.

Written atomically (``wtal_common.io``) to ``OUT/seed{n}/resume.pt`` at every checkpoint
boundary (every ``checkpoint_every`` iterations and, in a single-process run, after
``checkpoint_minutes`` of wall time without a state: ``training.wall_time_checkpoints``) and
once more when the run finishes.  It holds every module and optimizer state of the training
objective, the gradient scaler (fp16), the random states of torch (CPU and the CUDA device),
numpy, Python and the batch sampler's generator, the iteration, the metrics rows and
not-yet-averaged log values, and the training time so far.  With these, a single-process run
resumed from iteration N draws the same batches, dropout masks and text samples as the
uninterrupted run, so its final weights are bitwise equal on the CPU (tests/test_resume.py).
On a GPU, training itself is not bitwise reproducible (atomic adds in some backward
kernels), so neither is a resumed run.

The state belongs to one exact experiment: its ``identity`` (config but
``checkpoint_minutes``, seed, data set, class list, feature width, training videos, process
count) must match the run that wants to resume it, otherwise the run starts over (and says
why).  Loaded with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only, no pickled code.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wtal_common.io import atomic_output
from wtal_data.canonical import DatasetError

from .checkpoint import code_version
from .run_files import TensorBoardLog
from .seed_run import SeedRun

FORMAT_VERSION = 1

log = logging.getLogger("wtal_training")


def capture_rng(sampler_generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random stream the training loop draws from, as plain tensors and lists."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": numpy_state["state"]["key"].tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
        "sampler": sampler_generator.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], sampler_generator: torch.Generator, device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    sampler_generator.set_state(state["sampler"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see :func:`build_state`) atomically: a kill never leaves half a file."""
    with atomic_output(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def build_state(
    *,
    identity: dict[str, Any],
    code_version: str,
    iteration: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, Any],
    grad_scaler: Any,
    rng: dict[str, Any],
    rows: list[dict[str, Any]],
    pending: dict[str, list],
    train_seconds: float,
) -> dict[str, Any]:
    """The resume state as a dict of CPU tensors and plain values."""
    return {
        "format": FORMAT_VERSION,
        "identity": identity,
        "code_version": code_version,
        "iteration": int(iteration),
        "modules": {name: {k: v.detach().cpu() for k, v in m.state_dict().items()} for name, m in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "grad_scaler": grad_scaler.state_dict() if grad_scaler is not None else None,
        "rng": rng,
        "rows": list(rows),
        # log values awaiting their average (when checkpoint_every is not a multiple of log_every)
        "pending": {k: [torch.as_tensor(x).detach().cpu() for x in v] for k, v in pending.items()},
        "train_seconds": float(train_seconds),
    }


def load_resume_state(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The state in ``path`` if it belongs to this experiment, else ``None`` (logged).

    An unreadable file is an error naming it: it was written atomically, so it is not a
    half-written state but something else, and silently training over it would hide that.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike, with long messages
        raise DatasetError(
            f"{path}: not a readable resume state ({type(exc).__name__}); delete it or pass --restart"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise DatasetError(f"{path}: not a resume state of format {FORMAT_VERSION}; delete it or pass --restart")
    differences = identity_differences(state["identity"], identity)
    if differences:
        log.warning(
            "%s belongs to another experiment (%s differ): starting over, and it will be replaced",
            path,
            ", ".join(differences),
        )
        return None
    return state


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of what differs, config fields as ``config.<section>.<field>``."""
    names = []
    for key in sorted(set(saved) | set(current)):
        if key == "config":
            names += [f"config.{f}" for f in _differing(saved.get(key) or {}, current.get(key) or {})]
        elif saved.get(key) != current.get(key):
            names.append(key)
    return names


def _differing(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differing(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


# -- one seed's run: start afresh or continue ---------------------------------------------------
def run_identity(run: SeedRun) -> dict[str, Any]:
    """What a resume state must match: same config, seed, data set and process count.

    ``output.checkpoint_minutes`` is left out: it decides only when states are written, not
    what training computes, so a rerun may change it and still resume (and states written
    before the field existed still match).
    """
    train_ids = "\n".join(run.data.train.video_ids).encode()
    config = copy.deepcopy(run.config.to_dict())
    config.get("output", {}).pop("checkpoint_minutes", None)
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
        if config.optimiser.iterations:
            log.info("seed %d: %sstarting at iteration 1 of %d", run.seed, missing, config.optimiser.iterations)
        else:
            log.info("seed %d: %s0 iterations: the initial weights are the checkpoint", run.seed, missing)
    else:
        apply_resume_state(run, state)
        if run.done >= config.optimiser.iterations:
            log.info(
                "seed %d: %s holds a finished run (%d of %d iterations): not retrained, re-evaluating its "
                "final weights (--restart trains again)",
                run.seed,
                path,
                run.done,
                config.optimiser.iterations,
            )
        else:
            log.info(
                "seed %d: resuming from %s at iteration %d of %d (--restart starts over)",
                run.seed,
                path,
                run.done + 1,
                config.optimiser.iterations,
            )
    run.last_good = (run.done, run.inference_weights())
    run.tensorboard = TensorBoardLog(
        run.output_dir / "tensorboard", run.done, enabled=run.is_main and run.done < config.optimiser.iterations
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
        scaler = run.grad_scaler()
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
    if state.get("sampler") is not None:
        run.sampler.load_state_dict(state["sampler"])
    if state.get("objective") is not None:
        run.objective.load_state_dict(state["objective"])
    run.rows = list(state["rows"])
    run.pending = {k: [v.to(run.device) for v in values] for k, values in state["pending"].items()}
    run.seconds_before = float(state["train_seconds"])


def run_state(run: SeedRun, iteration: int, seconds: float) -> dict[str, Any]:
    """The resume state of ``run`` after ``iteration`` (see :func:`build_state`), with the
    sampler's and the objective's own state (a method's epochs, the head's pseudo-labels)."""
    state = build_state(
        identity=run_identity(run),
        code_version=code_version(),
        iteration=iteration,
        modules=run.objective.modules(),
        optimizers=run.objective.optimizers(),
        grad_scaler=run.grad_scaler(),
        rng=capture_rng(run.sampler.generator, run.device),
        rows=run.rows,
        pending=run.pending,
        train_seconds=seconds,
    )
    state["sampler"] = run.sampler.state_dict()
    state["objective"] = run.objective.state_dict()
    return state
