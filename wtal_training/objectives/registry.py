"""The training objectives, by name (``OBJECTIVES``), and the contract each keeps.

An objective is what the training loop steps: it owns the modules and their optimizers, runs
one iteration per ``step`` and says what runs at test time.  ``plain`` trains a base method
alone; a plug-in objective (``mllm4wtal``) composes a base method with its plug-in modules.
The run's ``modules`` pick the objective: none is ``plain``, otherwise the objective whose
:meth:`~TrainingObjective.module_names` hold them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from wtal_common.errors import ConfigError
from wtal_common.registry import Registry

from ..models.base import BaseMethod, Batch


class TrainingObjective(Protocol):
    """What a registered objective class provides.

    Class level (no instance needed):

    * :meth:`module_names`: the ``--modules`` names it answers to;
    * :meth:`resolve_settings`: its config resolution: the run's config -> the settings it
      builds from (its own section with every derived value filled in); a bad value is a
      ``ConfigError`` (exit 2), raised before any data loads;
    * :meth:`needs_text_priors`;
    * :meth:`build`: an instance for one seed;
    * :meth:`build_inference_model`: the test-time module of a trained run, rebuilt from a
      checkpoint's config to load its weights into;
    * :attr:`test_outputs`: the per-snippet outputs its inference model adds to the base
      method's (kept by :func:`wtal_training.inference.infer`).

    Instance level: ``modules``/``optimizers`` (saved in the resume state), ``step`` (one
    iteration: forward, backward, optimizer steps, any number of phases; returns scalar logs,
    ``loss`` among them), ``inference_model`` (the only module run at test time: for
    MLLM4WTAL the base method plus the localization head, never the text branches) and
    ``state_dict``/``load_state_dict`` (what a resumed run needs beyond modules and
    optimizers; None when nothing).
    """

    name: ClassVar[str]
    test_outputs: ClassVar[tuple[str, ...]]

    @classmethod
    def module_names(cls) -> tuple[str, ...]: ...

    @classmethod
    def resolve_settings(cls, config: Any) -> Any: ...

    @classmethod
    def needs_text_priors(cls, config: Any) -> bool: ...

    @classmethod
    def build(
        cls,
        config: Any,
        settings: Any,
        base_method: BaseMethod,
        *,
        text_priors: Any = None,
        accelerator: Any = None,
        seed: int = 0,
        data: Any = None,
    ) -> TrainingObjective: ...

    @classmethod
    def build_inference_model(cls, config: Any, base_method: BaseMethod) -> nn.Module: ...

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def step(self, batch: Batch, iteration: int) -> dict[str, Any]: ...

    def inference_model(self) -> nn.Module: ...

    def state_dict(self) -> dict[str, Any] | None: ...

    def load_state_dict(self, state: Any) -> None: ...


OBJECTIVES: Registry[type[TrainingObjective]] = Registry("training objective", field="config 'modules'")
PLAIN = "plain"  # the objective of a run without modules


def register_objective(name: str) -> Callable[[type], type]:
    """Class decorator: make an objective selectable (``OBJECTIVES``) and record its name."""

    def decorator(cls: type) -> type:
        OBJECTIVES.register(name)(cls)
        cls.name = name
        return cls

    return decorator


def objective_for(modules: Sequence[str]) -> type[TrainingObjective]:
    """The objective of a run's ``modules``: ``plain`` for none, else the one that has them all."""
    if not modules:
        return OBJECTIVES[PLAIN]
    for name in OBJECTIVES:
        if set(modules) <= set(OBJECTIVES[name].module_names()):
            return OBJECTIVES[name]
    known = sorted({m for name in OBJECTIVES for m in OBJECTIVES[name].module_names()})
    unknown = sorted(set(modules) - set(known))
    if unknown:
        raise ConfigError(f"config field 'modules': unknown module(s) {unknown}; choose from {known}")
    raise ConfigError(f"config field 'modules': {list(modules)} belong to different objectives; one run trains one")
