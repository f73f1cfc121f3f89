"""Zhou et al. (CVPR 2023), "Improving weakly supervised temporal action localization by
bridging train-test gap in pseudo labels" (zhou745/GauFuse_WSTAL, ``WSTAL``, ``Memory``,
``method.py``), rewritten.

Network (the RSKP design it builds on): a Linear + ReLU embedding (width = the feature
width), dropout ``dropout_ratio``; ``gaussians`` learnt centres are refined per video by
``em_iterations`` EM steps (responsibilities = softmax over centres of 5 x the cosine
similarity, normalised over time; new centre = responsibility-weighted mean of the
snippets); a random walk propagates the centres back to the snippets (closed form
``(1 - w) (I - w^2 Z^T Z_n)^-1 (w Z^T mu + x)`` with ``w = walk_weight``); one prediction
module scores both the original and the propagated snippets: cosine similarity x
``cosine_scale`` to C+1 class centres gives per-snippet class logits, to a foreground centre
the class-agnostic attention ``sigmoid``; video scores are softmaxes of the class centres
against the attention-pooled feature (``fg``) and against each class's own sigmoid-pooled
feature (``cw``).

Losses per video (:func:`video_losses`, a batch is the sum of its videos: the public code
back-propagates one full video at a time and steps every 10): normalised cross-entropy of
the ``fg`` scores against the labels with background 0 and of the ``cw`` scores with
background 1, on both branches (weights ``fore_weight``, ``back_weight``); the attention
loss ``mean(bottom k) - mean(top k)``, ``k = T // 8`` (``att_weight``); the snippet
pseudo-label loss, a cross-entropy at temperature ``spl_temperature`` between the original
branch and the propagated one (weight ``spl_weights[stage]``); after the warm-up, the
branch propagated from the class memory bank adds half-weighted video terms and 0.2 of the
snippet target; after the first snapshot epoch, the distillation loss against the
Gaussian-fused pseudo-labels of earlier snapshots (``zhou2023_training``).

The contract's outputs, a defined mapping:

* ``attention`` = the original branch's class-agnostic attention (the public test's
  ``o_att``), in [0, 1].
* ``cas`` = ``log`` of the public test's per-snippet class probability
  ``frame_mix * softmax(o) + (1 - frame_mix) * softmax(m)`` over C+1 classes (a mixture of
  two softmaxes; its softmax is that mixture).
* ``extras``: each branch's logits and video scores (for the loss); ``video_scores`` =
  ``0.6 fg_o + 0.4 fg_m`` broadcast over time (the test hook reads row 0).

Padding: EM responsibilities, the random walk, pooling and every mean over time use real
snippets only, so batched inference equals one-video-at-a-time inference.  Values the
public code hard-codes (the EM/walk sharpness 5, the 0.6/0.4 video mix, the memory
branch's 0.5 and 0.2, the attention loss's 8) are module constants; its command-line
options are hyperparameters in defaults.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..proposals import Proposals, soft_nms_per_class
from .base import BaseMethod, BaseOutput, Batch, register_base_method
from .zhou2023_pseudo import zhou_class_scores, zhou_kept_classes, zhou_video_proposals

SHARPNESS = 5.0  # softmax scale of the cosine similarities in EM and the random walk
VIDEO_MIX = 0.6  # test-time video score: 0.6 original + 0.4 propagated branch
MEMORY_VIDEO_WEIGHT = 0.5  # the memory branch's video terms
MEMORY_TARGET_MIX = 0.2  # the memory branch's share of the snippet pseudo-label target
ATTENTION_TOPK_RATIO = 8  # attention loss: top / bottom T // 8 snippets
NORM_EPS = 1e-9  # calculate_l1_norm's epsilon (an L2 normalisation, despite its name)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / (x.norm(dim=-1, keepdim=True) + NORM_EPS)


def responsibilities(
    centres: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, centre_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, K, T) softmax over the K centres of 5 x cosine(centre, snippet); 0 at padded
    snippets and (``centre_mask`` False) padded centres."""
    logits = torch.einsum("bkd,btd->bkt", l2_normalise(centres), l2_normalise(x)) * SHARPNESS
    if centre_mask is not None:
        logits = logits.masked_fill(~centre_mask.unsqueeze(-1), float("-inf"))
    z = torch.softmax(logits, dim=1)
    if centre_mask is not None:
        z = torch.nan_to_num(z, nan=0.0)  # a video without any centre: no propagation
    return z * mask.unsqueeze(1).to(z.dtype)


def expectation_maximisation(mu: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, iterations: int) -> torch.Tensor:
    """Video-specific centres (B, K, D): each step, responsibility-weighted means over time."""
    for _ in range(iterations):
        z = responsibilities(mu, x, mask)
        mu = torch.bmm(z / (z.sum(dim=-1, keepdim=True) + NORM_EPS), x)
    return mu


def random_walk(
    x: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor, w: float, centre_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``(1 - w) (I - w^2 Z^T Z_n)^-1 (w Z^T centres + x)`` for each video (B, T, D).

    ``Z`` (K, T) are the responsibilities, ``Z_n`` the same normalised over time.  The
    public code inverts the T x T matrix; here the Woodbury identity
    ``(I - U V)^-1 = I + U (I_K - V U)^-1 V`` solves a K x K system instead (the same
    value, O(T K^2) instead of O(T^3)).
    """
    z = responsibilities(centres, x, mask, centre_mask)  # (B, K, T)
    zn = z / (z.sum(dim=-1, keepdim=True) + NORM_EPS)
    rhs = w * torch.bmm(z.transpose(1, 2), centres) + x  # (B, T, D)
    eye = torch.eye(z.shape[1], dtype=x.dtype, device=x.device).unsqueeze(0)
    small = eye - (w**2) * torch.bmm(zn, z.transpose(1, 2))  # (B, K, K)
    inner = torch.linalg.solve(small, torch.bmm(zn, rhs))  # (B, K, D)
    return (1 - w) * (rhs + (w**2) * torch.bmm(z.transpose(1, 2), inner))


@dataclass
class BranchOutput:
    """One prediction-module pass: logits (B, T, C+1), attention (B, T), video scores (B, C+1)."""

    frame_logits: torch.Tensor
    attention: torch.Tensor
    video_fg: torch.Tensor
    video_cw: torch.Tensor


def _masked_time_normalise(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weights over time (dim 1) summing to ~1 over real snippets (public epsilon 1e-5)."""
    m = mask.to(weights.dtype).reshape(*mask.shape, *([1] * (weights.dim() - 2)))
    weights = weights * m
    return weights / (weights.sum(dim=1, keepdim=True) + 1e-5)


def normalised_cross_entropy(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per video (B,): ``-sum_c (y_c / sum y) log p_c`` (``NormalizedCrossEntropy``)."""
    target = labels / (labels.sum(dim=1, keepdim=True) + 1e-8)
    return -(target * torch.log(probs)).sum(dim=1)


def attention_loss(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per video (B,): mean of the ``k`` lowest minus mean of the ``k`` highest real
    attentions, ``k = max(1, T // 8)`` of the video's own length (``AttLoss(8)``)."""
    lengths = mask.sum(dim=1)
    k = torch.div(lengths, ATTENTION_TOPK_RATIO, rounding_mode="floor").clamp(min=1)
    k_max = int(k.max())
    take = (torch.arange(k_max, device=attention.device).unsqueeze(0) < k.unsqueeze(1)).to(attention.dtype)
    top = attention.masked_fill(~mask, float("-inf")).topk(k_max, dim=1).values
    bottom = attention.masked_fill(~mask, float("inf")).topk(k_max, dim=1, largest=False).values
    top = torch.where(take > 0, top, torch.zeros_like(top))
    bottom = torch.where(take > 0, bottom, torch.zeros_like(bottom))
    return (bottom.sum(dim=1) - top.sum(dim=1)) / k.to(attention.dtype)


def _masked_time_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B,) mean over real snippets."""
    m = mask.to(values.dtype)
    return (values * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


def soft_label_loss(logits: torch.Tensor, target_logits: torch.Tensor, mask: torch.Tensor, temperature: float):
    """Per video (B,): mean over snippets of the cross-entropy between ``softmax(target / T)``
    (no gradient) and ``log_softmax(logits / T)`` (``CategoryCrossEntropy``)."""
    target = torch.softmax(target_logits.detach() / temperature, dim=-1)
    ce = -(target * torch.log_softmax(logits / temperature, dim=-1)).sum(dim=-1)
    return _masked_time_mean(ce, mask)


def distillation_loss(
    logits_o: torch.Tensor, logits_m: torch.Tensor, pseudo: torch.Tensor, mask: torch.Tensor, mix: float
) -> torch.Tensor:
    """Per video (B,): ``-mean_t sum_c P log softmax(o) * mix + (same for m) * (1 - mix)``
    (``compute_distloss``); ``pseudo`` (B, T, C+1) is not normalised (a delta label may be
    negative)."""
    ce_o = -(torch.log_softmax(logits_o, dim=-1) * pseudo).sum(dim=-1)
    ce_m = -(torch.log_softmax(logits_m, dim=-1) * pseudo).sum(dim=-1)
    return _masked_time_mean(ce_o, mask) * mix + _masked_time_mean(ce_m, mask) * (1 - mix)


def check_schedules(hp: Mapping[str, Any]) -> None:
    """The list-valued schedules must pair up (a ConfigError naming the fields)."""
    from wtal_common.errors import ConfigError

    pairs = (
        ("snapshot_epochs", "snapshot_temperatures", 0),
        ("delta_epochs", "delta_scales", 0),
        ("lr_step_epochs", "lr_step_factors", 1),
    )
    for epochs, values, extra in pairs:
        if len(hp[values]) != len(hp[epochs]) + extra:
            raise ConfigError(
                f"config fields {epochs} ({len(hp[epochs])}) and {values} ({len(hp[values])}): "
                f"{values} needs {'one more entry than' if extra else 'one entry per'} {epochs}"
            )
        if list(hp[epochs]) != sorted(hp[epochs]):
            raise ConfigError(f"config field {epochs} must be in increasing order, got {hp[epochs]}")


@register_base_method("zhou2023")
class Zhou2023(BaseMethod):
    shared_settings = ("model.dropout_ratio", "test.class_threshold")
    test_outputs = ("video_scores",)

    def __init__(self, feature_dim: int, num_classes: int, **hp: Any) -> None:
        super().__init__(feature_dim, num_classes)
        self.hp = self.default_hyperparameters()
        self.hp.update(hp)
        check_schedules(self.hp)
        dim = feature_dim
        self.embedding = nn.Linear(feature_dim, dim)
        self.drop = nn.Dropout(float(self.hp["dropout_ratio"]))
        self.mu = nn.Parameter(torch.empty(int(self.hp["gaussians"]), dim))
        self.class_centres = nn.Parameter(torch.empty(num_classes + 1, dim))
        nn.init.xavier_uniform_(self.mu)
        nn.init.xavier_uniform_(self.class_centres)
        nn.init.xavier_uniform_(self.embedding.weight)
        nn.init.zeros_(self.embedding.bias)
        # the public fg_center starts as minus the background centre, then learns on its own
        self.fg_centre = nn.Parameter(-self.class_centres.detach()[-1:].clone())
        # class memory bank (``Memory``): the best-scoring video centres of each class
        slots = int(self.hp["memory_slots"])
        self.register_buffer("memory_centres", torch.zeros(num_classes, slots, dim))
        self.register_buffer("memory_scores", torch.zeros(num_classes, slots))

    # -- network -------------------------------------------------------------------------
    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> BranchOutput:
        """The public ``PredictionModule`` (no perturbation, no pseudo-label mixing: their defaults)."""
        scale = float(self.hp["cosine_scale"])
        nx = l2_normalise(x)
        centres = l2_normalise(self.class_centres)
        frame = torch.einsum("btd,cd->btc", nx, centres) * scale
        fg_logit = torch.einsum("btd,kd->btk", nx, l2_normalise(self.fg_centre)).squeeze(-1) * scale
        attention = torch.sigmoid(fg_logit)
        pool_fg = _masked_time_normalise(attention, mask)
        pool_cw = _masked_time_normalise(torch.sigmoid(frame), mask)
        video_fg_feat = l2_normalise(torch.einsum("btd,bt->bd", x, pool_fg))
        video_cw_feat = l2_normalise(torch.einsum("btd,btc->bcd", x, pool_cw))
        video_fg = torch.softmax(video_fg_feat @ centres.T * scale, dim=-1)
        video_cw = torch.softmax((video_cw_feat * centres.unsqueeze(0)).sum(-1) * scale, dim=-1)
        return BranchOutput(frame, attention, video_fg, video_cw)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        m = mask.unsqueeze(-1).to(features.dtype)
        x = self.drop(F.relu(self.embedding(features))) * m
        mu = expectation_maximisation(
            self.mu.unsqueeze(0).expand(x.shape[0], -1, -1), x, mask, int(self.hp["em_iterations"])
        )
        walked = random_walk(x, mu, mask, float(self.hp["walk_weight"]))
        o, w = self.predict(x, mask), self.predict(walked, mask)
        mix = float(self.hp["frame_mix"])
        probs = mix * torch.softmax(o.frame_logits, dim=-1) + (1 - mix) * torch.softmax(w.frame_logits, dim=-1)
        mu_scores = torch.softmax(
            l2_normalise(mu) @ l2_normalise(self.class_centres).T * float(self.hp["cosine_scale"]), dim=-1
        )
        video_scores = VIDEO_MIX * o.video_fg + (1 - VIDEO_MIX) * w.video_fg
        extras = {
            "logits_o": o.frame_logits,
            "logits_m": w.frame_logits,
            "video_fg_o": o.video_fg,
            "video_cw_o": o.video_cw,
            "video_fg_m": w.video_fg,
            "video_cw_m": w.video_cw,
            "centres": mu,
            "centre_scores": mu_scores,
            "video_scores": video_scores.unsqueeze(1).expand(-1, x.shape[1], -1),
        }
        return BaseOutput(embeddings=x, cas=torch.log(probs), attention=o.attention, extras=extras)

    # -- memory bank -----------------------------------------------------------------------
    def memory_for(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each video's memory centres, its labelled classes' slots in class order, padded:
        (B, S * max labels, D) and a (B, S * max labels) mask (``_return_queue``)."""
        slots, dim = self.memory_centres.shape[1], self.memory_centres.shape[2]
        rows = [torch.nonzero(row > 0).flatten() for row in labels]
        width = slots * max(1, max(len(r) for r in rows))
        centres = labels.new_zeros(len(rows), width, dim)
        valid = torch.zeros(len(rows), width, dtype=torch.bool, device=labels.device)
        for b, classes in enumerate(rows):
            n = slots * len(classes)
            centres[b, :n] = self.memory_centres[classes].reshape(n, dim)
            valid[b, :n] = True
        return centres, valid

    @torch.no_grad()
    def update_memory(self, centres: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> None:
        """For each video and labelled class c, keep the ``memory_slots`` best of the bank's
        and the video's centres by their class-c score (``_update_queue``)."""
        slots = self.memory_centres.shape[1]
        for b in range(labels.shape[0]):
            for c in torch.nonzero(labels[b] > 0).flatten().tolist():
                all_scores = torch.cat([self.memory_scores[c], scores[b, :, c]])
                all_centres = torch.cat([self.memory_centres[c], centres[b]])
                best = torch.sort(all_scores, descending=True, stable=True)
                self.memory_centres[c] = all_centres[best.indices[:slots]]
                self.memory_scores[c] = best.values[:slots]

    @torch.no_grad()
    def empty_memory(self) -> None:
        self.memory_centres.zero_()
        self.memory_scores.zero_()

    # -- loss ------------------------------------------------------------------------------
    def loss(self, output: BaseOutput, batch: Batch, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum over the batch's videos of :func:`video_losses`; the stage (warm-up,
        memory, distillation) and the pseudo-labels come from ``batch.extras`` (set by the
        method's own sampler, :mod:`.zhou2023_training`); without them (any other sampler)
        the warm-up losses.  With the memory in use, the bank is updated afterwards."""
        stage = batch.extras.get("zhou_stage", {})
        use_memory = bool(stage.get("use_memory", False))
        memory = self.memory_for(batch.labels) if use_memory else None
        terms = video_losses(
            self,
            output,
            batch.labels,
            batch.mask,
            memory=memory,
            pseudo=batch.extras.get("pseudo_labels"),
            spl_weight=float(stage.get("spl_weight", self.hp["spl_weights"][0])),
            distill_weight=float(stage.get("distill_weight", 0.0)),
        )
        parts = {k: v.sum() for k, v in terms.items()}
        total = sum(parts.values())
        if use_memory:
            self.update_memory(output.extras["centres"], output.extras["centre_scores"], batch.labels)
        return total, {k: v.detach() for k, v in parts.items()}

    # -- test time: the public ss_eval + getActLoc (proposals fused, no NMS) ----------------
    @classmethod
    def video_class_scores(cls, output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
        return zhou_class_scores(output, config)

    @classmethod
    def kept_classes(cls, class_scores: np.ndarray, config: Any) -> np.ndarray:
        return zhou_kept_classes(class_scores, config)

    @classmethod
    def video_proposals(
        cls, output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray, class_scores: np.ndarray
    ) -> Proposals:
        return zhou_video_proposals(output, config, classes)

    @classmethod
    def prepare_head_proposals(cls, proposals: Proposals, config: Any) -> Proposals:
        """The project's soft-NMS per class: :meth:`suppress` passes everything through, and the
        head's proposals are not fused."""
        return soft_nms_per_class(proposals, config.test.nms_sigma)

    @classmethod
    def suppress(cls, groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], config: Any) -> list[np.ndarray]:
        """Nothing left to suppress: :meth:`video_proposals` already fused overlapping proposals."""
        return [np.asarray(score, dtype=np.float64) for _, _, score in groups]

    # -- training: whole videos, epochs, memory bank, snapshots (zhou2023_training) ----------
    def training_sampler(self, data: Any, config: Any, seed: int) -> Any:
        from .zhou2023_training import Zhou2023Training

        return Zhou2023Training(self, data, config.data.batch_size, seed)

    def optimizer_options(self) -> dict[str, Any]:
        return {"betas": (0.9, 0.99)}  # the public Adam's betas


def video_losses(
    model: Zhou2023,
    output: BaseOutput,
    labels: torch.Tensor,
    mask: torch.Tensor,
    memory: tuple[torch.Tensor, torch.Tensor] | None = None,
    pseudo: torch.Tensor | None = None,
    spl_weight: float = 1.0,
    distill_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of each video (B,) (``method.py``'s ``total_loss``).

    ``memory``: the class memory bank's centres of each video's labels and their mask (from
    :meth:`Zhou2023.memory_for`), None before the warm-up ends; ``pseudo``: the distillation
    targets (B, T, C+1), None before the first snapshot epoch.
    """
    hp, ex = model.hp, output.extras
    batch = labels.shape[0]
    fg_labels = torch.cat([labels, labels.new_zeros(batch, 1)], dim=1)
    bg_labels = torch.cat([labels, labels.new_ones(batch, 1)], dim=1)
    fore = normalised_cross_entropy(ex["video_fg_o"], fg_labels) + normalised_cross_entropy(ex["video_fg_m"], fg_labels)
    back = normalised_cross_entropy(ex["video_cw_o"], bg_labels) + normalised_cross_entropy(ex["video_cw_m"], bg_labels)
    target = ex["logits_m"]
    if memory is not None:
        centres, valid = memory
        walked = random_walk(output.embeddings, centres, mask, float(hp["walk_weight"]), valid)
        r = model.predict(walked, mask)
        has = valid.any(dim=1).to(fore.dtype)  # a video without labels has no memory branch
        fore = fore + MEMORY_VIDEO_WEIGHT * normalised_cross_entropy(r.video_fg, fg_labels) * has
        back = back + MEMORY_VIDEO_WEIGHT * normalised_cross_entropy(r.video_cw, bg_labels) * has
        target = r.frame_logits * MEMORY_TARGET_MIX + target * (1 - MEMORY_TARGET_MIX)
    spl = soft_label_loss(ex["logits_o"], target, mask, float(hp["spl_temperature"]))
    terms = {
        "fore": float(hp["fore_weight"]) * fore,
        "back": float(hp["back_weight"]) * back,
        "att": float(hp["att_weight"]) * attention_loss(output.attention, mask),
        "spl": spl_weight * spl,
    }
    if pseudo is not None and distill_weight > 0:
        dist = distillation_loss(ex["logits_o"], ex["logits_m"], pseudo, mask, float(hp["pseudo_mix"]))
        terms["distill"] = distill_weight * dist
    return terms
