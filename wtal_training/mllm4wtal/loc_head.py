"""Prior-driven localization head (paper §3.3, eq. 18, after PivoTAL): anchor-free per-snippet
class scores and start/end offsets, trained from pseudo-labels, the only addition run at
inference.

Offsets contract (what the engine's post-processing decodes): ``loc_offsets[b, t] =
(d_start, d_end)``, distances in *native snippets* from the centre of snippet t (t + 0.5) to
its action's start and end, so the proposal is ``[t + 0.5 - d_start, t + 0.5 + d_end]`` in
snippet units (multiply by snippet_seconds for seconds).  ``loc_scores`` (B, T, C) are
sigmoid probabilities.  The head trains on native-scale windows (one temporal scale in
training and at inference) from the base method's own proposals: :mod:`.head_training` and
:mod:`.pseudo_labels`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .common import masked_topk_mean


class LocalizationHead(nn.Module):
    """Per-snippet class logits and boundary distances from the base method's embeddings.

    A trunk of k3 convolutions with the given ``dilations`` (receptive field ``1 + 2 *
    sum(dilations)`` snippets, plus 2 for the output convolutions): a snippet must see its
    action's ends to regress them, and THUMOS14's actions last up to tens of snippets."""

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        hidden: int = 256,
        prior_prob: float = 0.01,
        dilations: tuple[int, ...] = (1, 1),
    ) -> None:
        super().__init__()
        widths = [embedding_dim] + [hidden] * len(dilations)
        self.trunk = nn.ModuleList(
            nn.Conv1d(i, o, 3, padding=d, dilation=d) for i, o, d in zip(widths[:-1], widths[1:], dilations)
        )
        self.cls = nn.Conv1d(hidden, num_classes, 3, padding=1)
        self.reg = nn.Conv1d(hidden, 2, 3, padding=1)
        nn.init.constant_(self.cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, E) -> class logits (B, T, C), offsets (B, T, 2) >= 0 in snippets.

        Every convolution sees zeros at padded steps, so a video padded in a batch gives the
        numbers it gives alone."""
        keep = mask.unsqueeze(1).to(embeddings.dtype)
        x = embeddings.transpose(1, 2) * keep
        for conv in self.trunk:
            x = F.relu(conv(x)) * keep
        return self.cls(x).transpose(1, 2), F.softplus(self.reg(x)).transpose(1, 2)


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise focal loss (RetinaNet form)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return weight * ce * (1 - p_t) ** gamma


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1-D distance-IoU loss between centre-relative (d_start, d_end) pairs; (N, 2) -> (N,)."""
    ps, pe = pred.unbind(-1)
    ts, te = target.unbind(-1)
    inter = torch.minimum(ps, ts) + torch.minimum(pe, te)
    union = ps + pe + ts + te - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(ps, ts) + torch.maximum(pe, te)
    centre_gap = 0.5 * ((pe - ps) - (te - ts))
    return 1.0 - iou + centre_gap**2 / enclosing.clamp(min=eps) ** 2


def localization_loss(
    cls_logits: torch.Tensor,
    offsets: torch.Tensor,
    target_classes: torch.Tensor,
    target_offsets: torch.Tensor,
    positive: torch.Tensor,
    mask: torch.Tensor,
    video_labels: torch.Tensor,
    k_divisor: int = 8,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 18 on a batch of windows: L_focal + L_DIoU + L_MIL.

    ``cls_logits`` (B, T, C), ``offsets`` (B, T, 2) >= 0; targets: ``target_classes`` (B, T, C)
    in {0, 1}, ``target_offsets`` (B, T, 2) native snippets, ``positive`` (B, T) bool; ``mask``
    (B, T) real snippets; ``video_labels`` (B, C) the windows' videos' labels.

    * focal: RetinaNet's sigmoid focal loss (alpha 0.25, gamma 2) summed over real snippets
      and classes, divided by the number of positive snippets (at least 1);
    * DIoU: 1-D distance-IoU loss, mean over positive snippets (0 without any);
    * MIL: binary cross-entropy of the top-(T // k_divisor) mean of each class's logits (real
      snippets only) against the classes the window shows: 1 for a class with a positive
      snippet in the window, 0 for a class the video is not labelled with, and no loss for a
      labelled class the window's targets do not show (the window may hold none of it).
    """
    n_pos = positive.sum().clamp(min=1).to(cls_logits.dtype)
    real = mask.unsqueeze(-1).to(cls_logits.dtype)
    focal = (sigmoid_focal_loss(cls_logits, target_classes) * real).sum() / n_pos
    if bool(positive.any()):
        diou = diou_loss_1d(offsets[positive], target_offsets[positive]).mean()
    else:
        diou = offsets.sum() * 0.0
    shown = (target_classes * real).amax(dim=1)  # (B, C)
    counted = torch.maximum(shown, 1.0 - (video_labels > 0).to(shown.dtype))
    pooled = masked_topk_mean(cls_logits, mask, k_divisor)
    per_class = F.binary_cross_entropy_with_logits(pooled, shown, reduction="none")
    mil = (per_class * counted).sum() / counted.sum().clamp(min=1)
    total = focal + diou + mil
    return total, {"loc_focal": focal.detach(), "loc_diou": diou.detach(), "loc_mil": mil.detach()}
