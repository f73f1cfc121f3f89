"""UM (Lee et al., AAAI 2021): background modelling by feature-magnitude uncertainty
(Pilhyeon/WTAL-Uncertainty-Modeling, ``Model`` and ``UM_loss``), rewritten.

Network: Conv1d(D -> D, k 3) + ReLU gives the snippet features (the embeddings); dropout
0.7 and a bias-free 1x1 conv give a C-way CAS with *no* background column.  A snippet's
actionness is its feature magnitude ``m = ||f||``.

Loss (per batch): with ``k_act = T // r_act`` and ``k_bkg = T // r_bkg``, a video's class
scores are the softmax of the mean of its top-``k_act`` CAS values per class (BCE against
the normalised labels); the ``k_act`` largest and ``k_bkg`` smallest magnitudes (chosen
after a dropout-0.7 mask on the ranking, as the public code) are pseudo action and
background: ``(max(0, margin - ||mean f_act||) + ||mean f_bkg||)^2`` (weight ``um_alpha``),
and the background snippets' class scores are pushed to uniform (BCE, weight ``um_beta``).

The contract's outputs (:class:`~.base.BaseOutput`), a defined mapping:

* ``attention`` = UM's test-time normalised magnitude: ``(m - m_bkg) / (m_act - m_bkg)``
  clipped to [0, 1], with ``m_act`` / ``m_bkg`` the mean magnitude of the top ``k_act`` /
  bottom ``k_bkg`` snippets of the video (no dropout; differentiable, so plug-ins can
  distil into it).
* ``cas`` (C+1 logits) = ``log`` of the probabilities ``a * softmax(cas_um)`` for the classes
  and ``1 - a`` for background: its softmax is UM's own attention-weighted class
  probability, with the rest of the mass on background.
* ``extras["class_logits"]`` = UM's raw C-way CAS, read by the loss and by the test-time
  hook :meth:`UM.video_proposals` (UM's own post-processing, see :mod:`.um_postprocess`).

Test time: videos longer than ``max_seqlen`` snippets are uniformly resampled to it
(:meth:`UM.inference_length`), as UM's test loader does with its 750 segments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..proposals import Proposals
from .base import BaseMethod, BaseOutput, Batch, register_base_method
from .um_postprocess import hard_nms, um_class_scores, um_video_proposals


def _count(lengths: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per-video ``max(1, length // ratio)`` (B,) long (the public code: ``T // ratio``, no floor of 1)."""
    return torch.div(lengths, ratio, rounding_mode="floor").long().clamp(min=1)


def masked_topk_mean(values: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, largest: bool = True) -> torch.Tensor:
    """Mean of the ``k[b]`` largest (smallest) real entries along dim 1 of (B, T) or (B, T, C)."""
    squeeze = values.dim() == 2
    v = values.unsqueeze(-1) if squeeze else values
    fill = float("-inf") if largest else float("inf")
    v = v.masked_fill(~mask.unsqueeze(-1), fill)
    k_max = int(k.max())
    top = v.topk(k_max, dim=1, largest=largest).values  # (B, k_max, C)
    take = (torch.arange(k_max, device=v.device).unsqueeze(0) < k.unsqueeze(1)).unsqueeze(-1)
    out = torch.where(take, top, torch.zeros_like(top)).sum(dim=1) / k.unsqueeze(-1).to(v.dtype)
    return out.squeeze(-1) if squeeze else out


def normalised_magnitude(magnitude: torch.Tensor, mask: torch.Tensor, r_act: float, r_bkg: float) -> torch.Tensor:
    """UM's test-time actionness in [0, 1] (``utils.minmax_norm`` with the act/bkg means)."""
    lengths = mask.sum(dim=1)
    high = masked_topk_mean(magnitude, mask, _count(lengths, r_act), largest=True)
    low = masked_topk_mean(magnitude, mask, _count(lengths, r_bkg), largest=False)
    delta = high - low
    delta = torch.where(delta <= 0, torch.ones_like(delta), delta)
    return ((magnitude - low.unsqueeze(1)) / delta.unsqueeze(1)).clamp(0, 1) * mask


def um_losses(
    class_logits: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
    drop_mask: torch.Tensor,
    r_act: float,
    r_bkg: float,
    margin: float,
) -> dict[str, torch.Tensor]:
    """UM's three terms, unweighted: ``cls``, ``um`` and ``be`` (training batches have no padding).

    ``drop_mask`` (B, T) multiplies the magnitudes before the action/background ranking (the
    public code's dropout on a tensor of ones: 0 or 1 / (1 - p)).
    """
    batch, length, num_classes = class_logits.shape
    k_act, k_bkg = max(1, int(length // r_act)), max(1, int(length // r_bkg))
    magnitude = features.norm(dim=-1)
    ranked_act = (magnitude * drop_mask).sort(dim=1, descending=True).indices[:, :k_act]
    reverse = magnitude.max(dim=1, keepdim=True).values - magnitude
    ranked_bkg = (reverse * drop_mask).sort(dim=1, descending=True).indices[:, :k_bkg]
    gather = lambda x, idx: x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
    feat_act, feat_bkg = gather(features, ranked_act), gather(features, ranked_bkg)
    score_act = class_logits.sort(dim=1, descending=True).values[:, :k_act].mean(dim=1).softmax(dim=-1)
    score_bkg = gather(class_logits, ranked_bkg).mean(dim=1).softmax(dim=-1)
    target = labels / labels.sum(dim=1, keepdim=True)
    uniform = torch.full_like(score_bkg, 1.0 / num_classes)
    loss_act = F.relu(margin - feat_act.mean(dim=1).norm(dim=-1))
    loss_bkg = feat_bkg.mean(dim=1).norm(dim=-1)
    return {
        "cls": F.binary_cross_entropy(score_act, target),
        "um": ((loss_act + loss_bkg) ** 2).mean(),
        "be": F.binary_cross_entropy(score_bkg, uniform),
    }


@register_base_method("um")
class UM(BaseMethod):
    shared_settings = ("data.max_seqlen",)
    test_outputs = ("class_logits",)

    def __init__(self, feature_dim: int, num_classes: int, **hp: Any) -> None:
        super().__init__(feature_dim, num_classes)
        self.hp = self.default_hyperparameters()
        self.hp.update(hp)
        # PyTorch's default initialisation, as the public code (no weights_init there)
        self.conv = nn.Conv1d(feature_dim, feature_dim, 3, padding=1)
        self.drop = nn.Dropout(0.7)
        self.classifier = nn.Conv1d(feature_dim, num_classes, 1, bias=False)
        self.select_drop = nn.Dropout(0.7)  # the ranking's dropout mask (loss only)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        m = mask.unsqueeze(1).to(features.dtype)
        x = features.transpose(1, 2) * m
        feats = F.relu(self.conv(x)) * m  # (B, D, T); padded steps 0 (never ranked: masked below)
        logits = self.classifier(self.drop(feats)).transpose(1, 2)  # (B, T, C)
        embeddings = feats.transpose(1, 2)
        magnitude = embeddings.norm(dim=-1)
        attention = normalised_magnitude(magnitude, mask, self.hp["r_act"], self.hp["r_bkg"])
        probs = logits.softmax(dim=-1) * attention.unsqueeze(-1)
        cas = torch.cat([probs, (1 - attention).unsqueeze(-1)], dim=-1).clamp(min=1e-8).log()
        return BaseOutput(
            embeddings=embeddings, cas=cas, attention=attention, extras={"class_logits": logits, "magnitude": magnitude}
        )

    def loss(self, output: BaseOutput, batch: Batch, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.hp
        logits = output.extras["class_logits"]
        drop_mask = self.select_drop(torch.ones_like(logits[..., 0]))
        parts = um_losses(logits, output.embeddings, batch.labels, drop_mask, hp["r_act"], hp["r_bkg"], hp["um_margin"])
        terms = {"cls": parts["cls"], "um": hp["um_alpha"] * parts["um"], "be": hp["um_beta"] * parts["be"]}
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    # -- test time: UM's own recipe --------------------------------------------------------
    def inference_length(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths.clamp(max=int(self.hp["max_seqlen"]))

    @classmethod
    def video_class_scores(cls, output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
        return um_class_scores(output, config)

    @classmethod
    def video_proposals(
        cls, output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray, class_scores: np.ndarray
    ) -> Proposals:
        return um_video_proposals(output, config, classes, class_scores)

    @classmethod
    def suppress(cls, groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], config: Any) -> list[np.ndarray]:
        return [hard_nms(start, end, score, config.own.nms_iou) for start, end, score in groups]
