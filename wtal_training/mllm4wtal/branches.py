"""The contract of an MLLM4WTAL branch: a plug-in module switched on by its name in ``--modules``.

A branch class registers itself with ``@MLLM4WTAL_MODULES.register(name)`` (:mod:`.plugins`)
and subclasses one of the two roles the objective (:mod:`.objective`) wires in:

* :class:`MatchBranch` (KSM): its loss joins eq. 19 (the match phase, trained with the base
  method by the match optimizer); it may replace the base method's attention on the match
  side of the distillation (:attr:`MatchTerms.attention`) and as the distillation target of
  the reconstruction phase (:meth:`MatchBranch.target_attention`).
* :class:`ReconstructionBranch` (CSR): eq. 20, a phase and an optimizer of its own; at most
  one per run.

A registered module whose class takes neither role is an error when a run switches it on
(:func:`branch_class`): it would otherwise pass the name check and train nothing.  Branches
are built in role order (match ones first, in registration order), so their parameters are
drawn from the seeded stream in the same order whatever the order of ``--modules``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from wtal_common.errors import ConfigError

from ..models.base import BaseMethod, BaseOutput, Batch
from .plugins import MLLM4WTAL_MODULES

ROLES = ("match", "reconstruction")


@dataclass
class BranchSetup:
    """What a branch is built from."""

    settings: Mapping[str, Any]  # the resolved ``mllm4wtal`` section (settings.py)
    text_priors: Any  # prior_generation.text_priors.TextPriors (or a stand-in with its attributes)
    base: BaseMethod
    embedding_dim: int  # width of the base method's embeddings
    device: torch.device


@dataclass
class MatchStep:
    """One match phase as a match branch sees it."""

    batch: Batch
    output: BaseOutput  # the base method's train-mode output, with gradient
    rng: np.random.Generator  # this iteration's text stream (seeded by seed and iteration)
    text_priors: Any
    settings: Mapping[str, Any]


@dataclass
class MatchTerms:
    """A match branch's contribution to eq. 19."""

    loss: torch.Tensor  # added to the match loss as is (weight it inside the branch)
    logs: dict[str, Any] = field(default_factory=dict)  # detached values for metrics.csv
    attention: torch.Tensor | None = None  # replaces the base attention on the distillation's match side


class Branch(nn.Module):
    """A plug-in module of the MLLM4WTAL objective; subclass a role, not this."""

    role: ClassVar[str] = ""

    @classmethod
    def build(cls, setup: BranchSetup) -> Branch:  # pragma: no cover
        raise NotImplementedError


class MatchBranch(Branch):
    """A term of eq. 19, trained with the base method."""

    role = "match"

    def match_terms(self, step: MatchStep) -> MatchTerms:  # pragma: no cover
        raise NotImplementedError

    def target_attention(
        self, embeddings: torch.Tensor, mask: torch.Tensor, base_attention: torch.Tensor
    ) -> torch.Tensor:
        """psi(A) of the reconstruction phase (eval mode, no gradient): the base attention
        unless the branch has an attention of its own."""
        return base_attention


class ReconstructionBranch(Branch):
    """Eq. 20's branch (CSR): ``attention`` (a :class:`.common.ConvAttention`), ``forward``,
    ``loss``, ``contrastive_losses`` and ``reconstructor_parameters`` are what the
    objective's reconstruction phase calls."""

    role = "reconstruction"


def branch_class(name: str) -> type[Branch]:
    """The registered class of module ``name``, checked to be wired in (a role's subclass)."""
    cls = MLLM4WTAL_MODULES[name]  # an unregistered name: ConfigError listing the registered ones
    if not (isinstance(cls, type) and issubclass(cls, Branch) and cls.role in ROLES):
        raise ConfigError(
            f"config field 'modules': MLLM4WTAL module {name!r} is registered but not wired in: its class "
            f"{getattr(cls, '__name__', cls)!r} must subclass MatchBranch or ReconstructionBranch "
            "(wtal_training/mllm4wtal/branches.py)"
        )
    return cls


def build_branches(names: Sequence[str], setup: BranchSetup) -> dict[str, Branch]:
    """The switched-on branches, built in role order then registration order (module docstring)."""
    classes = {name: branch_class(name) for name in names}
    order = list(MLLM4WTAL_MODULES.names())
    ranked = sorted(classes, key=lambda n: (ROLES.index(classes[n].role), order.index(n)))
    if sum(classes[n].role == "reconstruction" for n in ranked) > 1:
        raise ConfigError(f"config field 'modules': at most one reconstruction branch, got {ranked}")
    return {name: classes[name].build(setup).to(setup.device) for name in ranked}
