"""Prior-driven localization head (paper §3.3, eq. 18, after PivoTAL): anchor-free per-snippet
class scores and start/end offsets, trained from pseudo-labels, the only addition run at
inference.

Offsets contract (what the engine's post-processing decodes): ``loc_offsets[b, t] =
(d_start, d_end)``, distances in *snippets* from the centre of snippet t (t + 0.5) to its
action's start and end, so the proposal is ``[t + 0.5 - d_start, t + 0.5 + d_end]`` in
snippet units (multiply by snippet_seconds for seconds).  ``loc_scores`` (B, T, C) are
sigmoid probabilities.

Pseudo-labels (decided here; the paper leaves it open): a snippet is foreground when the
*fused attention* -- the mean of the base method's attention and the text branches'
attentions (A_KSM, A_CSR) that are on -- is >= ``threshold``; a foreground snippet is
given the video's labelled class with the highest base CAS probability; each run of
consecutive snippets with the same class is one pseudo-instance, whose bounds give the
offset targets.  Everything is detached: pseudo-labels are targets, not paths for
gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .common import masked_topk_mean


class LocalizationHead(nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, hidden: int = 256, prior_prob: float = 0.01) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv1d(embedding_dim, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
        )
        self.cls = nn.Conv1d(hidden, num_classes, 3, padding=1)
        self.reg = nn.Conv1d(hidden, 2, 3, padding=1)
        nn.init.constant_(self.cls.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, E) -> class logits (B, T, C), offsets (B, T, 2) >= 0 in snippets."""
        x = self.trunk(embeddings.transpose(1, 2)) * mask.unsqueeze(1).to(embeddings.dtype)
        return self.cls(x).transpose(1, 2), F.softplus(self.reg(x)).transpose(1, 2)


@torch.no_grad()
def pseudo_labels(
    cas: torch.Tensor, attentions: list[torch.Tensor], labels: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-snippet class targets (B, T, C), offset targets (B, T, 2) and a positive mask (B, T).

    cas: base CAS logits (B, T, C+1); attentions: list of (B, T) in [0, 1]; labels (B, C).
    Vectorised run finding: a run starts where the class changes; cummax of start indices
    gives each snippet its run start, the same on the reversed sequence gives its end.
    """
    batch, length, n_cls = labels.shape[0], cas.shape[1], labels.shape[1]
    fused = torch.stack([a.detach() for a in attentions]).mean(0)
    probs = torch.softmax(cas.detach(), dim=-1)[..., :n_cls]
    probs = probs.masked_fill(labels.unsqueeze(1) <= 0, -1.0)
    best = probs.argmax(dim=-1)  # (B, T)
    positive = (fused >= threshold) & mask & (labels.sum(1, keepdim=True) > 0)
    assigned = torch.where(positive, best, torch.full_like(best, -1))
    targets = F.one_hot(assigned.clamp(min=0), n_cls).to(cas.dtype) * positive.unsqueeze(-1).to(cas.dtype)

    t = torch.arange(length, device=cas.device).expand(batch, length)
    prev = F.pad(assigned, (1, 0), value=-2)[:, :-1]
    nxt = F.pad(assigned, (0, 1), value=-2)[:, 1:]
    starts = torch.where(assigned != prev, t, torch.zeros_like(t)).cummax(dim=1).values
    ends_rev = torch.where(assigned != nxt, length - 1 - t, torch.zeros_like(t)).flip(1).cummax(dim=1).values.flip(1)
    ends = length - 1 - ends_rev  # index of the last snippet of the run
    centre = t.to(cas.dtype) + 0.5
    offsets = torch.stack([centre - starts.to(cas.dtype), ends.to(cas.dtype) + 1.0 - centre], dim=-1)
    return targets, offsets * positive.unsqueeze(-1).to(cas.dtype), positive


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
    cas: torch.Tensor,
    attentions: list[torch.Tensor],
    labels: torch.Tensor,
    mask: torch.Tensor,
    threshold: float = 0.5,
    k_divisor: int = 8,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 18: focal + DIoU (on pseudo-labels) + MIL (top-k pooled head scores vs video labels)."""
    targets, offset_targets, positive = pseudo_labels(cas, attentions, labels, mask, threshold)
    n_pos = positive.sum().clamp(min=1).to(cls_logits.dtype)
    focal = (sigmoid_focal_loss(cls_logits, targets) * mask.unsqueeze(-1).to(cls_logits.dtype)).sum() / n_pos
    if bool(positive.any()):
        diou = diou_loss_1d(offsets[positive], offset_targets[positive]).mean()
    else:
        diou = offsets.sum() * 0.0
    pooled = masked_topk_mean(cls_logits, mask, k_divisor)
    mil = F.binary_cross_entropy_with_logits(pooled, labels)
    total = focal + diou + mil
    return total, {
        "loc_focal": focal.detach(),
        "loc_diou": diou.detach(),
        "loc_mil": mil.detach(),
        "loc_positive_fraction": (positive.sum() / mask.sum().clamp(min=1)).detach(),
    }
