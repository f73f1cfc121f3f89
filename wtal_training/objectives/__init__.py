"""Training objectives: what the training loop steps (modules, optimizers, one ``step`` per
iteration) and what it runs at test time (``inference_model``), chosen by the run's modules
from the ``OBJECTIVES`` registry (:mod:`.registry`).

Importing this package registers the built-in objectives: ``plain`` (:mod:`.plain`) and
``mllm4wtal`` (:mod:`wtal_training.mllm4wtal`).
"""

from __future__ import annotations

from typing import Any

from wtal_common.errors import ConfigError

from .. import mllm4wtal  # noqa: F401  (registers the "mllm4wtal" objective)
from ..models.base import BaseMethod
from .plain import PlainObjective
from .registry import OBJECTIVES, PLAIN, TrainingObjective, objective_for, register_objective


def resolve_objective(config: Any) -> tuple[type[TrainingObjective], Any]:
    """The run's objective class and its resolved settings: the one place a plug-in
    configuration is resolved (a bad one is a ``ConfigError``, exit 2)."""
    objective = objective_for(config.modules)
    return objective, objective.resolve_settings(config)


def check_objective_config(config: Any, text_priors_dir: str | None) -> None:
    """Refuse a bad plug-in setup before any data is loaded or any seed trained: unknown or
    unwired modules, a bad plug-in option, or modules without text priors."""
    objective, _ = resolve_objective(config)
    if objective.needs_text_priors(config) and text_priors_dir is None:
        raise ConfigError(f"modules {list(config.modules)} need text priors: pass --text-priors DIR")


def build_objective(
    config: Any,
    base_method: BaseMethod,
    text_priors: Any = None,
    accelerator: Any = None,
    seed: int = 0,
    data: Any = None,
) -> TrainingObjective:
    """The run's objective for one seed.  ``seed`` is the protocol seed (the plug-ins' text
    sampling follows it, so seeds differ in their text draws as they do in their batches);
    ``data``: the run's data set (the localization head's pseudo-labels come from it)."""
    objective, settings = resolve_objective(config)
    return objective.build(
        config, settings, base_method, text_priors=text_priors, accelerator=accelerator, seed=seed, data=data
    )


__all__ = [
    "OBJECTIVES",
    "PLAIN",
    "PlainObjective",
    "TrainingObjective",
    "build_objective",
    "check_objective_config",
    "objective_for",
    "register_objective",
    "resolve_objective",
]
