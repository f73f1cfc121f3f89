"""The plain objective: a base method trained alone, one Adam step on its own loss per iteration."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from ..models.base import BaseMethod, Batch
from .registry import PLAIN, register_objective


@register_objective(PLAIN)
class PlainObjective:
    """A base method without plug-ins (``modules: []``); through accelerate, so one GPU, several
    (gradients averaged) or the CPU run the same code, with autocast when mixed precision is on.
    It has no settings of its own (the ``optimiser`` section is the run's)."""

    test_outputs: tuple[str, ...] = ()

    def __init__(self, config: Any, base_method: BaseMethod, accelerator: Any = None) -> None:
        self.base_method = base_method
        self.accelerator = accelerator
        self.grad_clip = float(config.optimiser.grad_clip)
        self.optimizer = torch.optim.Adam(
            base_method.parameters(),
            lr=config.optimiser.lr,
            weight_decay=config.optimiser.weight_decay,
            **base_method.optimizer_options(),
        )
        self.model: nn.Module = base_method
        if accelerator is not None:
            self.model, self.optimizer = accelerator.prepare(base_method, self.optimizer)

    # -- the contract's class-level hooks (objectives/registry.py) --------------------------
    @classmethod
    def module_names(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def resolve_settings(cls, config: Any) -> None:
        return None

    @classmethod
    def needs_text_priors(cls, config: Any) -> bool:
        return False

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
    ) -> PlainObjective:
        return cls(config, base_method, accelerator)

    @classmethod
    def build_inference_model(cls, config: Any, base_method: BaseMethod) -> nn.Module:
        return base_method

    # -- one run ------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"base": self.base_method}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"base": self.optimizer}

    def inference_model(self) -> nn.Module:
        return self.base_method

    def state_dict(self) -> dict[str, Any] | None:
        """Nothing beyond modules and optimizers."""
        return None

    def load_state_dict(self, state: Any) -> None:
        pass

    def step(self, batch: Batch, iteration: int) -> dict[str, Any]:
        self.model.train()
        autocast = self.accelerator.autocast() if self.accelerator is not None else contextlib.nullcontext()
        with autocast:
            output = self.model(batch.features, batch.mask)
            loss, parts = self.base_method.loss(output, batch, iteration)
        # No finiteness check here: a `.item()` per iteration would stall a GPU pipeline.
        # The training loop watches the returned "loss" tensor on the device.
        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
            if self.grad_clip > 0:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        else:
            loss.backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach(), **parts}
