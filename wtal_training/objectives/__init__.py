"""Training objectives: what the training loop steps (modules, optimizers, one ``step`` per
iteration) and what it runs at test time (``inference_model``)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import torch
from torch import nn

from wtal_common.errors import ConfigError

from ..models.base import BaseMethod, Batch
from .plain import PlainObjective

log = logging.getLogger("wtal_training")


class TrainingObjective(Protocol):
    """What the training loop trains: owns the modules and their optimizers.

    ``step`` runs one training iteration (forward, backward, optimizer steps; any number of
    phases) and returns scalar logs, "loss" among them.  ``inference_model`` is the only module
    run at test time: for MLLM4WTAL the base method plus the localization head, never the text
    branches.  ``state_dict`` / ``load_state_dict``: what a resumed run needs beyond the modules
    and optimizers (None when nothing).
    """

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def step(self, batch: Batch, iteration: int) -> dict[str, Any]: ...

    def inference_model(self) -> nn.Module: ...

    def state_dict(self) -> dict[str, Any] | None: ...

    def load_state_dict(self, state: Any) -> None: ...


def build_objective(
    config: Any,
    base_method: BaseMethod,
    text_priors: Any = None,
    accelerator: Any = None,
    seed: int = 0,
    data: Any = None,
) -> TrainingObjective:
    """PlainObjective without plug-in modules, else the MLLM4WTAL objective.

    ``seed`` is the protocol seed: the plug-ins' text sampling follows it, so seeds differ
    in their text draws as they do in their batches.  ``data``: the run's data set (the
    localization head's pseudo-labels are built from its training videos).
    """
    if not config.modules:
        return PlainObjective(config, base_method, accelerator)
    from ..mllm4wtal import build_mllm4wtal_objective

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


def check_objective_config(config: Any, text_priors_dir: str | None) -> None:
    """Refuse a bad plug-in setup before any data is loaded or any seed trained: modules
    without text priors, or a bad ``mllm4wtal`` option (a typo there would otherwise be
    ignored by a baseline run, or fail only once training starts)."""
    if config.modules and text_priors_dir is None:
        raise ConfigError(f"modules {config.modules} need text priors: pass --text-priors DIR")
    if config.modules or config.mllm4wtal:
        from ..mllm4wtal import resolve_config

        resolve_config(config)


__all__ = ["PlainObjective", "TrainingObjective", "build_objective", "check_objective_config"]
