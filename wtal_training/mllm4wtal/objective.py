"""Dual-Prior Interactive Distillation (paper §3.3, eqs. 19-20): the training objective that
composes a base method with the KSM and CSR branches and the localization head.

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
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from wtal_common.errors import ConfigError

from ..models.base import BaseMethod, BaseOutput, Batch
from .common import masked_mse
from .csr import CompleteSemanticReconstruction
from .head_training import HeadTraining
from .ksm import KeySemanticMatching
from .loc_head import LocalizationHead
from .plugins import MLLM4WTAL_MODULES
from .text_inputs import complete_tokens, key_query_tokens

DEFAULTS: dict[str, Any] = {
    "modules": ["ksm", "csr"],
    "loc_head": True,
    "lr": 5e-4,  # KSM and the head (paper, THUMOS14)
    "base_lr": None,  # None: same as lr; the engine's top-level lr (the base method's own) when given
    "csr_lr": None,  # None: same as lr
    "weight_decay": 1e-3,
    "grad_clip": 10.0,  # the branches (KSM, CSR, head), as Boosting-WTAL clips its branches
    "base_grad_clip": 0.0,  # the base method: the engine's top-level grad_clip, as in the baseline run
    "lambda1": 1.5,
    "lambda2": 1.5,
    "mu1": 1.0,
    "k_divisor": 8,
    "n_context": 8,
    "text_dim": 512,
    "text_heads": 8,
    "text_layers": 1,
    "ksm_text": "key",  # "key" | "class_name"
    "ksm_attention": "base",  # "base" | "own"
    "csr_text": "complete",  # "complete" | "template"
    "csr_dim": 512,
    "csr_heads": 4,
    "csr_layers": 2,
    "csr_ffn": 1024,
    "csr_attention_hidden": 512,  # A_CSR's conv head width (CO2-Net's D/4 at D = 2048)
    "csr_attention_dropout": 0.1,  # dropout on CSR's attention weights (its other dropouts stay 0.1)
    "csr_label_smoothing": 0.0,
    "csr_loss_reduction": "sentence_sum",  # eq. 17: "sentence_sum" (sum over masked words) | "word_mean"
    "csr_mask": "fixed",  # "fixed" (the text-priors stage's mask) | "resample" (a random third per iteration)
    "csr_passes": "contrastive",  # "contrastive" (attended, whole, inverted; Boosting-WTAL) | "single"
    "csr_margin_whole": 0.1,  # Boosting-WTAL's margins, nats per masked word
    "csr_margin_inverse": 0.15,
    "loc_hidden": 256,
    "loc_warmup": 0.3,  # share of the iterations before the head gets a loss (pseudo-labels need a trained base)
    "loc_ramp": 0.1,  # share of the iterations over which mu1 then ramps from 0 to its value
    "loc_refresh_every": 100,  # iterations between pseudo-label refreshes (whole training set, eval mode)
    "loc_window": None,  # native snippets per head training window (None: data.max_seqlen)
    "loc_batch_size": None,  # windows per iteration (None: data.batch_size)
    "loc_min_relative_score": 0.5,  # pseudo-labels: min-max normalised proposal score kept (pseudo_labels.py)
    "loc_max_overlap": 0.5,  # ... IoU above which a proposal repeats a kept one
    "loc_max_share": 0.9,  # ... most of a video the pseudo-instances may cover
    "phase_schedule": "both",  # "both" | "alternate"
    "phase_period": 1,
    "rec_every": 1,  # with "both": the rec phase runs every rec_every-th iteration
    "embedding_dim": None,  # None: inferred from one dry forward of the base method
    "seed": 0,
}
KNOWN_MODULES = set(MLLM4WTAL_MODULES.names())  # registered by .ksm and .csr
# Per data-set family values of the paper that differ from DEFAULTS (applied before the
# ``mllm4wtal`` dict, so an explicit value still wins).  ActivityNet1.2: "the learning rate
# was set to 0.00003" (§4); THUMOS14's 5e-4 is DEFAULTS["lr"].
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {"activitynet": {"lr": 3e-5}}
CHOICES = {
    "phase_schedule": ("both", "alternate"),
    "ksm_attention": ("base", "own"),
    "csr_loss_reduction": ("sentence_sum", "word_mean"),
    "csr_mask": ("fixed", "resample"),
    "csr_passes": ("contrastive", "single"),
}


def _scalar(value: Any) -> torch.Tensor | float:
    """A log value: detached tensors stay on the device (the engine averages them at log
    time), so logging never makes the training loop wait for the GPU."""
    return value.detach() if isinstance(value, torch.Tensor) else float(value)


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Defaults <- a few engine-level keys <- the ``mllm4wtal`` sub-dict.

    From the engine's top level only ``modules``, ``seed``, ``lr`` (the base method's own
    learning rate, used as ``base_lr``), ``weight_decay`` and ``k`` (the base method's
    top-k ratio, used as ``k_divisor``) are read, so "+modules" runs differ from the
    baseline only in the modules.  Every other key lives under ``mllm4wtal``.
    """
    if not isinstance(config, Mapping):  # the engine's TrainConfig dataclass
        config = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    cfg = dict(DEFAULTS)
    for src, dst in (
        ("modules", "modules"),
        ("seed", "seed"),
        ("lr", "base_lr"),
        ("weight_decay", "weight_decay"),
        ("k", "k_divisor"),
        ("grad_clip", "base_grad_clip"),
    ):
        if config.get(src) is not None:
            cfg[dst] = config[src]
    if isinstance(cfg["k_divisor"], float):
        cfg["k_divisor"] = max(1, int(round(cfg["k_divisor"])))
    cfg.update(FAMILY_DEFAULTS.get(str(config.get("family") or ""), {}))
    cfg.update(config.get("mllm4wtal", {}) or {})
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown config field(s) under mllm4wtal: {sorted(unknown)}")
    modules = list(cfg["modules"] or [])
    if any(m in ("loc", "loc_head") for m in modules):  # CLI aliases: the head is on unless loc_head: false
        cfg["loc_head"] = True
    modules = [m for m in modules if m not in ("dpid", "loc", "loc_head")]  # dpid: implied by ksm/csr
    if not set(modules) <= KNOWN_MODULES:
        raise ConfigError(f"config field modules must be a subset of {sorted(KNOWN_MODULES)}, got {modules}")
    cfg["modules"] = modules
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise ConfigError(f"config field {key} must be one of {list(allowed)}, got {cfg[key]!r}")
    for key in ("phase_period", "k_divisor", "rec_every", "loc_refresh_every"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"config field mllm4wtal.{key} must be >= 1, got {cfg[key]!r}")
    for key in ("loc_warmup", "loc_ramp", "loc_min_relative_score", "loc_max_overlap"):
        if not 0.0 <= float(cfg[key]) <= 1.0:
            raise ConfigError(f"config field mllm4wtal.{key} must be in [0, 1], got {cfg[key]!r}")
    if not 0.0 < float(cfg["loc_max_share"]) <= 1.0:
        raise ConfigError(f"config field mllm4wtal.loc_max_share must be in (0, 1], got {cfg['loc_max_share']!r}")
    return cfg


def _embedding_dim(base: BaseMethod, device: torch.device) -> int:
    """Embedding width from one dry forward (no width is hard-coded)."""
    was_training = base.training
    base.eval()
    with torch.no_grad():
        out = base(
            torch.zeros(1, 16, base.feature_dim, device=device), torch.ones(1, 16, dtype=torch.bool, device=device)
        )
    base.train(was_training)
    return int(out.embeddings.shape[-1])


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

    ``a_ksm`` is psi(A_KSM) for eq. 20 (the base attention unless KSM has its own head; None
    when no rec phase runs this iteration); ``a_csr`` is psi(A_CSR) for eq. 19 (None
    without CSR).  ``csr_stem`` is CSR's ``attention.stem(features)`` *with* its graph, for
    the rec phase of the same iteration (only when asked for: see
    :meth:`MLLM4WTALObjective.targets`).
    """

    a_ksm: torch.Tensor | None
    a_csr: torch.Tensor | None
    csr_stem: torch.Tensor | None = None


class InferenceModel(nn.Module):
    """Base method plus the localization head: the whole test-time graph."""

    def __init__(self, base: BaseMethod, head: LocalizationHead | None) -> None:
        super().__init__()
        self.base = base
        self.head = head

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        out = self.base(features, mask)
        if self.head is not None:
            logits, offsets = self.head(out.embeddings, mask)
            out.extras["loc_scores"] = torch.sigmoid(logits)
            out.extras["loc_offsets"] = offsets
        return out


class MLLM4WTALObjective:
    """A :class:`~wtal_training.models.base.TrainingObjective` for base + KSM/CSR/DPID/head."""

    def __init__(
        self, config: dict[str, Any], base: BaseMethod, text_priors: Any, train_config: Any = None, data: Any = None
    ) -> None:
        """``train_config`` (the run's TrainConfig) and ``data`` (its LoadedData: training
        videos and ground truth) feed the localization head's pseudo-labels; without them
        (cost benchmarks, tests of the other branches) the head gets no loss."""
        self.cfg = cfg = resolve_config(config)
        self.base = base
        self.use_ksm = "ksm" in cfg["modules"]
        self.use_csr = "csr" in cfg["modules"]
        if (self.use_ksm or self.use_csr) and text_priors is None:
            raise ConfigError("config field modules asks for ksm/csr but no text priors were given")
        self.tp = text_priors
        device = next(base.parameters()).device
        num_classes = base.num_classes
        if text_priors is not None and len(text_priors.classes) != num_classes:
            raise ConfigError(f"text priors have {len(text_priors.classes)} classes, the base method {num_classes}")
        emb_dim = cfg["embedding_dim"] or self._infer_embedding_dim(device)

        self.ksm = self.csr = self.head = None
        if self.use_ksm:
            self.ksm = KeySemanticMatching(
                text_priors.word_vectors,
                text_priors.pad_id,
                emb_dim,
                num_classes,
                text_dim=cfg["text_dim"],
                n_context=cfg["n_context"],
                heads=cfg["text_heads"],
                layers=cfg["text_layers"],
                k_divisor=cfg["k_divisor"],
                own_attention=cfg["ksm_attention"] == "own",
            ).to(device)
        if self.use_csr:
            self.csr = CompleteSemanticReconstruction(
                text_priors.word_vectors,
                text_priors.pad_id,
                text_priors.mask_id,
                base.feature_dim,
                dim=cfg["csr_dim"],
                heads=cfg["csr_heads"],
                layers=cfg["csr_layers"],
                ffn=cfg["csr_ffn"],
                attention_hidden=cfg["csr_attention_hidden"],
                label_smoothing=cfg["csr_label_smoothing"],
                attention_dropout=cfg["csr_attention_dropout"],
            ).to(device)
        self.head_training: HeadTraining | None = None
        if cfg["loc_head"]:
            self.head = LocalizationHead(emb_dim, num_classes, hidden=cfg["loc_hidden"]).to(device)
            if data is not None and train_config is not None:
                self.head_training = HeadTraining(
                    self.head, base, train_config, data.train, data.gt, cfg, int(cfg["seed"])
                )

        lr, wd = cfg["lr"], cfg["weight_decay"]
        groups = [{"params": [p for p in base.parameters() if p.requires_grad], "lr": cfg["base_lr"] or lr}]
        for module in (self.ksm, self.head):
            if module is not None:
                groups.append({"params": [p for p in module.parameters() if p.requires_grad], "lr": lr})
        # foreach: Adam's multi-tensor path (the default on CUDA, not on the CPU), the same
        # arithmetic as the per-parameter loop, in a fraction of the time on the CPU.
        self._optimizers = {"match": torch.optim.Adam(groups, lr=lr, weight_decay=wd, foreach=True)}
        if self.csr is not None:
            self._optimizers["rec"] = torch.optim.Adam(
                [p for p in self.csr.parameters() if p.requires_grad],
                lr=cfg["csr_lr"] or lr,
                weight_decay=wd,
                foreach=True,
            )
        self._inference = InferenceModel(base, self.head)
        self._base_param_ids = {id(p) for p in base.parameters()}

    # -- TrainingObjective protocol -------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        found = {"base": self.base, "ksm": self.ksm, "csr": self.csr, "loc_head": self.head}
        return {k: v for k, v in found.items() if v is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def inference_model(self) -> nn.Module:
        return self._inference

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond modules and optimizers: the head's window stream and
        its current pseudo-labels (the engine keeps it in the resume state)."""
        return {"head_training": self.head_training.state_dict() if self.head_training is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.head_training is not None and state.get("head_training") is not None:
            self.head_training.load_state_dict(state["head_training"])

    def phases(self, iteration: int) -> list[str]:
        """Which phases run at this iteration, in order."""
        if self.cfg["phase_schedule"] == "both":
            phases = ["match"] + (["rec"] if iteration % int(self.cfg["rec_every"]) == 0 else [])
        else:
            # the engine's first iteration is 1: blocks are [1, period], [period + 1, 2 period], ...
            phases = [("match", "rec")[((iteration - 1) // int(self.cfg["phase_period"])) % 2]]
        return [p for p in phases if p == "match" or self.csr is not None]

    def step(self, batch: Batch, iteration: int) -> dict[str, torch.Tensor | float]:
        for module in self.modules().values():
            module.train()
        rng = np.random.default_rng([int(self.cfg["seed"]), int(iteration)])
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
        # The engine's non-finite check reads "loss": the sum of the phase losses run.
        logs["loss"] = sum(logs[k] for k in ("match_loss", "rec_loss") if k in logs)
        return logs

    # -- phases -------------------------------------------------------------------------
    def _infer_embedding_dim(self, device: torch.device) -> int:
        return _embedding_dim(self.base, device)

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
        psi(A_KSM) (the base, or KSM's own, attention) only serves a rec phase, so the base
        runs here only when ``with_rec``.  Then CSR's attention stem (conv + LeakyReLU,
        before any dropout, so the same tensor in both modes) is computed with gradient and
        kept for that rec phase, run before CSR's next update (an in-place update in between
        makes backward fail loudly, it cannot go stale silently).
        """
        own = self.ksm is not None and self.cfg["ksm_attention"] == "own"
        a_ksm = a_csr = csr_stem = None
        with eval_mode(self.base, self.ksm, self.csr):
            if with_rec and self.csr is not None:
                out = self.base(batch.features, batch.mask)
                a_ksm = self.ksm.attention(out.embeddings, batch.mask) if own else out.attention
            if self.csr is not None:
                with torch.set_grad_enabled(with_rec):
                    stem = self.csr.attention.stem(batch.features)
                a_csr = self.csr.attention.from_stem(stem.detach(), batch.mask)
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
        if self.ksm is not None:
            keys = key_query_tokens(self.tp, batch.video_ids, batch.labels, rng, cfg["ksm_text"])
            res = self.ksm(
                out.embeddings,
                batch.mask,
                keys.ids.to(batch.features.device),
                keys.padding.to(batch.features.device),
                out.attention,
            )
            l_ksm = self.ksm.loss(res["similarity"], res["attention"], batch.mask, batch.labels)
            loss = loss + l_ksm
            logs["ksm_loss"] = l_ksm.detach()
            attention = res["attention"]
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
        # Non-finite losses are caught by the engine from logs["loss"] (see step), without
        # a per-iteration host sync.
        self._clip_and_step("match", loss)
        logs["match_loss"] = loss.detach()
        return logs

    def _rec_step(
        self, batch: Batch, rng: np.random.Generator, targets: Targets | None = None
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if targets is None:
            targets = self.targets(batch, with_rec=True)
        words = complete_tokens(
            self.tp, batch.video_ids, batch.labels, rng, cfg["csr_text"], resample_mask=cfg["csr_mask"] == "resample"
        )
        device = batch.features.device
        word_targets = words.targets.to(device)
        contrastive = cfg["csr_passes"] == "contrastive"
        passes = ("attended", "whole", "inverse") if contrastive else ("attended",)
        res = self.csr(
            batch.features,
            batch.mask,
            words.ids.to(device),
            words.padding.to(device),
            attention_stem=targets.csr_stem,
            passes=passes,
        )
        l_csr = self.csr.loss(res["logits"], word_targets, cfg["csr_loss_reduction"])
        distill = masked_mse(res["attention"], targets.a_ksm, batch.mask)
        logs = {"csr_loss": l_csr.detach(), "distill_rec": distill.detach()}
        if not contrastive:
            loss = l_csr + cfg["lambda2"] * distill
            self._clip_and_step("rec", loss)
            return {**logs, "rec_loss": loss.detach()}
        l_whole = self.csr.loss(res["logits_whole"], word_targets, cfg["csr_loss_reduction"])
        hinges = self.csr.contrastive_losses(res, word_targets, cfg["csr_margin_whole"], cfg["csr_margin_inverse"])
        reconstruction = l_csr + l_whole
        selection = hinges["hinge_whole"] + hinges["hinge_inverse"] + cfg["lambda2"] * distill
        self._clip_and_step(
            "rec",
            [(reconstruction, self.csr.reconstructor_parameters()), (selection, list(self.csr.attention.parameters()))],
        )
        logs.update({"csr_loss_whole": l_whole.detach(), **{f"csr_{k}": v.detach() for k, v in hinges.items()}})
        return {**logs, "rec_loss": (reconstruction + selection).detach()}


def build_inference_model(config: Any, base_method: BaseMethod) -> InferenceModel:
    """The test-time module of a trained run (base + head), to load a checkpoint into."""
    cfg = resolve_config(config)
    head = None
    if cfg["loc_head"]:
        device = next(base_method.parameters()).device
        emb_dim = cfg["embedding_dim"] or _embedding_dim(base_method, device)
        head = LocalizationHead(emb_dim, base_method.num_classes, hidden=cfg["loc_hidden"]).to(device)
    return InferenceModel(base_method, head)


def build_mllm4wtal_objective(
    config: dict[str, Any], base_method: BaseMethod, text_priors: Any, train_config: Any = None, data: Any = None
) -> MLLM4WTALObjective:
    """Entry point for the engine: base method + the MLLM4WTAL modules named in config
    (``train_config`` and ``data``: see :class:`MLLM4WTALObjective`)."""
    return MLLM4WTALObjective(config, base_method, text_priors, train_config, data)
