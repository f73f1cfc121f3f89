"""Dual-Prior Interactive Distillation (paper §3.3, eqs. 19-20): the training objective that
composes a base method with its switched-on branches (KSM, CSR: :mod:`.branches`) and the
localization head, registered as the ``mllm4wtal`` objective (``--modules``; settings:
:mod:`.settings`).

Two phases, each with its own optimizer:

* match (eq. 19), optimizer "match" over the base method, KSM and the head:
  L_base + L_KSM + lambda1 * MSE(A_KSM, sg(A_CSR)) + mu1 * L_loc
* rec (eq. 20), optimizer "rec" over CSR:
  L_CSR + lambda2 * MSE(A_CSR, sg(A_KSM))

psi is a stop-gradient only (``detach``): both attentions are sigmoids in [0, 1], so no
normalisation is needed to compare them, and normalising would change what is distilled.
The target attention on the match side is A_KSM when KSM is on, otherwise the base
method's attention, so "+CSR" alone still transfers the complete-description prior to
the base.  By default A_KSM *is* the base method's attention (the paper's eqs. 2-3 follow
CO2-Net's embedding and attention), so the distillation shapes the attention that drives
proposals at inference.

Targets without dropout: every stop-gradient target (psi(A_CSR) in eq. 19, psi(A_KSM) in
eq. 20) comes from one no-grad pass with the base method and the branches in eval mode
(:meth:`MLLM4WTALObjective.targets`); the localization head learns from the base method's
own proposals on whole training videos, at their native scale (:mod:`.head_training`).  CO2-Net/DELU
drop out the attention *logit* (p 0.5) before the sigmoid, so in train mode about half of
the snippets have attention exactly 0.5: as targets they would be noise, and with the 0.5
pseudo-label threshold they would all become positives.  The gradient side (the terms
being trained) stays in train mode, as in the base methods.

Schedule: ``phase_schedule = "both"`` runs match in every iteration and rec after it in
every ``rec_every``-th one (1: every iteration, Boosting-WTAL's order); ``"alternate"``
runs ``phase_period`` iterations of match, then as many of rec, and so on.  The targets of
an iteration are computed once, before the match phase updates anything, and serve both
phases.

CSR passes (``csr_passes``): ``contrastive`` (default, after Boosting-WTAL) reconstructs
from the attended, the whole and the inverted video; the reconstructor (every CSR weight
but A_CSR's head) learns L_CSR on the attended and the whole video, A_CSR's head learns
the two margin hinges plus lambda2 * MSE(A_CSR, psi(A_KSM)) (the ancestor's separate
reconstructor and mask steps, here one optimizer step with each loss's gradient routed to
its own parameters).  ``single``: L_CSR on the attended video + lambda2 * MSE, every CSR
weight (eq. 20 as printed).

Cost (docs/benchmarks.md): the iteration's eval-mode pass and the rec phase share the
first conv + LeakyReLU of CSR's attention head (it precedes the head's only dropout and
CSR is not updated by match, so both passes would compute the same tensor); the
optimizers use Adam's multi-tensor ``foreach`` path, the same arithmetic as the
per-parameter loop.  Both leave every loss, gradient and update bitwise as before
(``tests/test_mllm4wtal_reference.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from wtal_common.errors import ConfigError

from ..models.base import BaseMethod, Batch
from ..objectives.registry import register_objective
from .branches import BranchSetup, MatchStep, build_branches
from .common import masked_mse
from .head_training import HeadTraining
from .inference_model import HEAD_OUTPUTS, InferenceModel, build_head, embedding_dim
from .plugins import MLLM4WTAL_MODULES
from .settings import SECTION, SWITCHES, resolve_settings
from .text_inputs import complete_tokens

log = logging.getLogger("wtal_training")


def _scalar(value: Any) -> torch.Tensor | float:
    """A log value: detached tensors stay on the device (the training loop averages them at
    log time), so logging never makes the loop wait for the GPU."""
    return value.detach() if isinstance(value, torch.Tensor) else float(value)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` in eval mode (no dropout) for the block, then restore each one's mode."""
    present = [m for m in modules if m is not None]
    states = [(m, m.training) for m in present]
    for m in present:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in states:
            m.train(was_training)


@dataclasses.dataclass
class Targets:
    """Stop-gradient targets of one iteration, from the eval-mode (dropout-free) model.

    ``a_ksm`` is psi(A_KSM) for eq. 20 (the base attention unless a match branch has its own;
    None when no reconstruction phase runs this iteration); ``a_csr`` is psi(A_CSR) for eq. 19
    (None without a reconstruction branch).  ``csr_stem`` is the reconstruction branch's
    ``attention.stem(features)`` *with* its graph, for the reconstruction phase of the same
    iteration (only when asked for: see :meth:`MLLM4WTALObjective.targets`).
    """

    a_ksm: torch.Tensor | None
    a_csr: torch.Tensor | None
    csr_stem: torch.Tensor | None = None


@register_objective(SECTION)
class MLLM4WTALObjective:
    """The ``mllm4wtal`` training objective: base method + branches + localization head."""

    test_outputs = HEAD_OUTPUTS

    # -- the contract's class-level hooks (objectives/registry.py) ------------------------------
    @classmethod
    def module_names(cls) -> tuple[str, ...]:
        return (*MLLM4WTAL_MODULES.names(), *SWITCHES)

    @classmethod
    def resolve_settings(cls, config: Any) -> dict[str, Any]:
        return resolve_settings(config)

    @classmethod
    def needs_text_priors(cls, config: Any) -> bool:
        return True

    @classmethod
    def build(
        cls,
        config: Any,
        settings: dict[str, Any],
        base_method: BaseMethod,
        *,
        text_priors: Any = None,
        accelerator: Any = None,
        seed: int = 0,
        data: Any = None,
    ) -> MLLM4WTALObjective:
        """One seed's objective.  It runs its own optimizers outside accelerate: no gradient
        averaging across processes and no autocast, so several processes are refused and
        mixed precision is ignored (with a warning)."""
        modules = list(config.modules)
        if text_priors is None:
            raise ConfigError(f"modules {modules} need text priors: pass --text-priors DIR")
        if accelerator is not None and accelerator.num_processes > 1:
            raise ConfigError(
                f"modules {modules} do not support multi-process training yet "
                f"({accelerator.num_processes} processes): run them on one device"
            )
        if config.optimiser.mixed_precision != "no":
            log.warning(
                "mixed_precision=%s is ignored with modules %s (they train in fp32)",
                config.optimiser.mixed_precision,
                modules,
            )
        return cls(settings, base_method, text_priors, config, data, seed)

    @classmethod
    def build_inference_model(cls, config: Any, base_method: BaseMethod) -> InferenceModel:
        """The test-time module of a trained run (base + head), to load a checkpoint into."""
        device = next(base_method.parameters()).device
        return InferenceModel(base_method, build_head(resolve_settings(config), base_method, device))

    # -- one seed ---------------------------------------------------------------------------------
    def __init__(
        self,
        settings: dict[str, Any],
        base: BaseMethod,
        text_priors: Any,
        train_config: Any = None,
        data: Any = None,
        seed: int = 0,
    ) -> None:
        """``settings``: resolved (:func:`.settings.resolve_settings`).  ``train_config`` (the
        run's config) and ``data`` (its LoadedData: training videos and ground truth) feed the
        localization head's pseudo-labels; without them (cost benchmarks, tests of the other
        branches) the head gets no loss.  ``seed``: the protocol seed of the text draws."""
        self.cfg = cfg = settings
        self.seed = int(seed)
        self.base = base
        if cfg["modules"] and text_priors is None:
            raise ConfigError(f"config field modules asks for {cfg['modules']} but no text priors were given")
        self.tp = text_priors
        device = next(base.parameters()).device
        if text_priors is not None and len(text_priors.classes) != base.num_classes:
            raise ConfigError(
                f"text priors have {len(text_priors.classes)} classes, the base method {base.num_classes}"
            )
        emb_dim = cfg["embedding_dim"] or embedding_dim(base, device)
        self.branches = build_branches(cfg["modules"], BranchSetup(cfg, text_priors, base, emb_dim, device))
        self.match_branches = [b for b in self.branches.values() if b.role == "match"]
        self.reconstruction = next((b for b in self.branches.values() if b.role == "reconstruction"), None)
        self.head = build_head({**cfg, "embedding_dim": emb_dim}, base, device)
        self.head_training: HeadTraining | None = None
        if self.head is not None and data is not None and train_config is not None:
            self.head_training = HeadTraining(self.head, base, train_config, data.train, data.gt, cfg, self.seed)

        lr, wd = cfg["lr"], cfg["weight_decay"]
        groups = [{"params": [p for p in base.parameters() if p.requires_grad], "lr": cfg["base_lr"] or lr}]
        for module in (*self.match_branches, self.head):
            if module is not None:
                groups.append({"params": [p for p in module.parameters() if p.requires_grad], "lr": lr})
        # foreach: Adam's multi-tensor path (the default on CUDA, not on the CPU), the same
        # arithmetic as the per-parameter loop, in a fraction of the time on the CPU.
        self._optimizers = {"match": torch.optim.Adam(groups, lr=lr, weight_decay=wd, foreach=True)}
        if self.reconstruction is not None:
            self._optimizers["rec"] = torch.optim.Adam(
                [p for p in self.reconstruction.parameters() if p.requires_grad],
                lr=cfg["csr_lr"] or lr,
                weight_decay=wd,
                foreach=True,
            )
        self._inference = InferenceModel(base, self.head)
        self._base_param_ids = {id(p) for p in base.parameters()}

    # -- TrainingObjective protocol -------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        found = {"base": self.base, **self.branches, "head": self.head}
        return {k: v for k, v in found.items() if v is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def inference_model(self) -> nn.Module:
        return self._inference

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond modules and optimizers: the head's window stream and
        its current pseudo-labels (kept in the resume state)."""
        return {"head_training": self.head_training.state_dict() if self.head_training is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.head_training is not None and state.get("head_training") is not None:
            self.head_training.load_state_dict(state["head_training"])

    def phases(self, iteration: int) -> list[str]:
        """Which phases run at this iteration, in order."""
        if self.cfg["phase_schedule"] == "both":
            phases = ["match"] + (["rec"] if iteration % int(self.cfg["rec_every"]) == 0 else [])
        else:
            # the training loop's first iteration is 1: blocks are [1, period], [period + 1, 2 period], ...
            phases = [("match", "rec")[((iteration - 1) // int(self.cfg["phase_period"])) % 2]]
        return [p for p in phases if p == "match" or self.reconstruction is not None]

    def step(self, batch: Batch, iteration: int) -> dict[str, torch.Tensor | float]:
        for module in self.modules().values():
            module.train()
        rng = np.random.default_rng([self.seed, int(iteration)])
        logs: dict[str, torch.Tensor | float] = {}
        phases = self.phases(iteration)
        with record_function("mllm4wtal.targets"):
            targets = self.targets(batch, with_rec="rec" in phases)  # before any update of this iteration
        for phase in phases:
            with record_function(f"mllm4wtal.{phase}"):
                if phase == "match":
                    part = self._match_step(batch, iteration, rng, targets)
                else:
                    part = self._rec_step(batch, rng, targets)
            logs.update(part)
        # The training loop's non-finite check reads "loss": the sum of the phase losses run.
        logs["loss"] = sum(logs[k] for k in ("match_loss", "rec_loss") if k in logs)
        return logs

    # -- phases -------------------------------------------------------------------------
    def _clip_and_step(self, name: str, loss: torch.Tensor | list[tuple[torch.Tensor, list[nn.Parameter]]]) -> None:
        """Backward, clip, one step of optimizer ``name``.  ``loss``: one loss for every
        parameter, or (loss, parameters) pairs, each loss's gradient reaching only its own
        parameters (CSR's reconstructor and A_CSR's head)."""
        opt = self._optimizers[name]
        opt.zero_grad(set_to_none=True)
        if isinstance(loss, torch.Tensor):
            loss.backward()
        else:
            for i, (part, params) in enumerate(loss):
                part.backward(inputs=params, retain_graph=i < len(loss) - 1)
        # The base method is clipped exactly as in its baseline run (so a "+modules" run
        # differs from the baseline only in the modules); the branches by grad_clip.
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        for clip, group in (
            (self.cfg["base_grad_clip"], [p for p in params if id(p) in self._base_param_ids]),
            (self.cfg["grad_clip"], [p for p in params if id(p) not in self._base_param_ids]),
        ):
            if clip and group:
                torch.nn.utils.clip_grad_norm_(group, clip)
        opt.step()

    @torch.no_grad()
    def targets(self, batch: Batch, with_rec: bool = False) -> Targets:
        """psi(A_KSM) and psi(A_CSR) from the model without dropout.

        One no-grad pass with the base method and the branches in eval mode; their train
        flags are restored afterwards, so the gradient side of each phase keeps dropout.
        psi(A_KSM) (the base attention, or a match branch's own) only serves a reconstruction
        phase, so the base runs here only when ``with_rec``.  Then the reconstruction branch's
        attention stem (conv + LeakyReLU, before any dropout, so the same tensor in both
        modes) is computed with gradient and kept for that phase, run before the branch's next
        update (an in-place update in between makes backward fail loudly, it cannot go stale
        silently).
        """
        rec = self.reconstruction
        a_ksm = a_csr = csr_stem = None
        with eval_mode(self.base, *self.branches.values()):
            if with_rec and rec is not None:
                out = self.base(batch.features, batch.mask)
                a_ksm = out.attention
                for branch in self.match_branches:
                    a_ksm = branch.target_attention(out.embeddings, batch.mask, a_ksm)
            if rec is not None:
                with torch.set_grad_enabled(with_rec):
                    stem = rec.attention.stem(batch.features)
                a_csr = rec.attention.from_stem(stem.detach(), batch.mask)
                csr_stem = stem if with_rec else None
        return Targets(a_ksm=a_ksm, a_csr=a_csr, csr_stem=csr_stem)

    def _match_step(
        self, batch: Batch, iteration: int, rng: np.random.Generator, targets: Targets | None = None
    ) -> dict[str, torch.Tensor | float]:
        cfg = self.cfg
        if targets is None:
            targets = self.targets(batch)
        out = self.base(batch.features, batch.mask)
        loss, base_logs = self.base.loss(out, batch, iteration)
        logs = {f"base/{k}": _scalar(v) for k, v in base_logs.items()}
        logs["base_loss"] = loss.detach()
        attention = out.attention  # the match side of the distillation (with gradient)
        step = MatchStep(batch, out, rng, self.tp, cfg)
        for branch in self.match_branches:
            terms = branch.match_terms(step)
            loss = loss + terms.loss
            logs.update(terms.logs)
            if terms.attention is not None:
                attention = terms.attention
        if targets.a_csr is not None:
            distill = masked_mse(attention, targets.a_csr, batch.mask)
            loss = loss + cfg["lambda1"] * distill
            logs["distill_match"] = distill.detach()
        if self.head_training is not None:
            part = self.head_training.loss(iteration)  # None during the warm-up
            if part is not None:
                l_loc, loc_logs = part
                loss = loss + l_loc  # already weighted by mu1(iteration)
                logs.update({k: _scalar(v) for k, v in loc_logs.items()})
                logs["loc_loss"] = l_loc.detach()
        # Non-finite losses are caught by the training loop from logs["loss"] (see step),
        # without a per-iteration host sync.
        self._clip_and_step("match", loss)
        logs["match_loss"] = loss.detach()
        return logs

    def _rec_step(
        self, batch: Batch, rng: np.random.Generator, targets: Targets | None = None
    ) -> dict[str, torch.Tensor]:
        cfg, rec = self.cfg, self.reconstruction
        if targets is None:
            targets = self.targets(batch, with_rec=True)
        words = complete_tokens(
            self.tp, batch.video_ids, batch.labels, rng, cfg["csr_text"], resample_mask=cfg["csr_mask"] == "resample"
        )
        device = batch.features.device
        word_targets = words.targets.to(device)
        contrastive = cfg["csr_passes"] == "contrastive"
        passes = ("attended", "whole", "inverse") if contrastive else ("attended",)
        res = rec(
            batch.features,
            batch.mask,
            words.ids.to(device),
            words.padding.to(device),
            attention_stem=targets.csr_stem,
            passes=passes,
        )
        l_csr = rec.loss(res["logits"], word_targets, cfg["csr_loss_reduction"])
        distill = masked_mse(res["attention"], targets.a_ksm, batch.mask)
        logs = {"csr_loss": l_csr.detach(), "distill_rec": distill.detach()}
        if not contrastive:
            loss = l_csr + cfg["lambda2"] * distill
            self._clip_and_step("rec", loss)
            return {**logs, "rec_loss": loss.detach()}
        l_whole = rec.loss(res["logits_whole"], word_targets, cfg["csr_loss_reduction"])
        hinges = rec.contrastive_losses(res, word_targets, cfg["csr_margin_whole"], cfg["csr_margin_inverse"])
        reconstruction = l_csr + l_whole
        selection = hinges["hinge_whole"] + hinges["hinge_inverse"] + cfg["lambda2"] * distill
        self._clip_and_step(
            "rec",
            [(reconstruction, rec.reconstructor_parameters()), (selection, list(rec.attention.parameters()))],
        )
        logs.update({"csr_loss_whole": l_whole.detach(), **{f"csr_{k}": v.detach() for k, v in hinges.items()}})
        return {**logs, "rec_loss": (reconstruction + selection).detach()}
