"""The resume state of one seed: what a killed run needs to continue as if never stopped.

Written atomically (``wtal_common.io``) to ``OUT/seed{n}/resume.pt`` at every checkpoint
boundary (every ``checkpoint_every`` iterations and, in a single-process run, after
``checkpoint_minutes`` of wall time without a state: ``engine.wall_time_checkpoints``) and
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

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wtal_common.io import atomic_output
from wtal_data.canonical import DatasetError

RESUME_FILE = "resume.pt"
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
    """Names of what differs, config fields as ``config.<field>``."""
    names = []
    for key in sorted(set(saved) | set(current)):
        if key == "config":
            fields = set(saved.get(key, {})) | set(current.get(key, {}))
            names += [f"config.{f}" for f in sorted(fields) if saved[key].get(f) != current[key].get(f)]
        elif saved.get(key) != current.get(key):
            names.append(key)
    return names
