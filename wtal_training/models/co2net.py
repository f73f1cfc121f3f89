"""CO2-Net (Hong et al., ACM MM 2021): cross-modal consensus attention + MIL.

Architecture and loss follow the public code (harlanhong/MM2021-CO2-Net, class ``CO2``
and ``ANT_CO2``), rewritten: each modality's features are gated channel-wise by the
other modality's local features times its own global context, a per-modality attention
head scores foreground, the gated features are fused into a 2048-d embedding and a
classifier gives C+1 logits per snippet.  Widths scale with the feature dimension D
(D/2 per modality, attention hidden D/4 = 512 for I3D) so tests can use tiny features.

Padding: inference batches pad videos to a common length; every temporal convolution
input is multiplied by the mask and the global context is a masked mean, so a padded
video gives the same numbers as the video run alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .. import losses
from .base import BaseMethod, BaseOutput, Batch, register_base_method


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded time steps of a (B, C, T) tensor so convolutions see zeros there."""
    return x if mask is None else x * mask.unsqueeze(1).to(x.dtype)


def _init_weights(module: nn.Module) -> None:
    # Kaiming-uniform weights and zero biases, as in both repositories.
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.kaiming_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ConsensusAttention(nn.Module):
    """One modality's cross-modal consensus filter and attention head."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.global_gate = nn.Conv1d(dim, dim, 3, padding=1)  # on the length-1 global context
        self.local_gate = nn.Conv1d(dim, dim, 3, padding=1)  # on the other modality
        self.gate_drop = nn.Dropout(0.5)
        self.att1 = nn.Conv1d(dim, hidden, 3, padding=1)
        self.att2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.att3 = nn.Conv1d(hidden, 1, 1)
        self.att_drop1 = nn.Dropout(0.5)
        self.att_drop2 = nn.Dropout(0.5)

    def forward(
        self, main: torch.Tensor, other: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            context = main.mean(dim=-1, keepdim=True)
        else:
            m = mask.unsqueeze(1).to(main.dtype)
            context = (main * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1)
        global_gate = self.gate_drop(F.leaky_relu(self.global_gate(context), 0.2))
        local_gate = self.gate_drop(F.leaky_relu(self.local_gate(_masked(other, mask)), 0.2))
        filtered = torch.sigmoid(local_gate * global_gate) * main
        filtered = _masked(filtered, mask)
        h = self.att_drop1(F.leaky_relu(self.att1(filtered), 0.2))
        h = F.leaky_relu(self.att2(_masked(h, mask)), 0.2)
        # dropout on the logit before the sigmoid, as in the public code
        attention = torch.sigmoid(self.att_drop2(self.att3(h)))
        return attention.squeeze(1), filtered


@register_base_method("co2net")
class CO2Net(BaseMethod):
    shared_settings = (
        "model.k",
        "model.dropout_ratio",
        "model.alpha1",
        "model.alpha2",
        "model.alpha3",
        "model.alpha4",
        "model.pool_t",
        "data.num_similar",
        "data.max_seqlen",
        "optimiser.iterations",
    )

    def __init__(self, feature_dim: int, num_classes: int, **hp: Any) -> None:
        super().__init__(feature_dim, num_classes)
        if feature_dim % 2:
            raise ValueError(f"feature_dim {feature_dim} must be even (RGB half + flow half)")
        self.hp = self.default_hyperparameters()
        self.hp.update(hp)
        half = feature_dim // 2
        hidden = max(1, feature_dim // 4)
        drop = float(self.hp["dropout_ratio"])
        self._build_attention(half, hidden)
        self.fusion = nn.Conv1d(feature_dim, feature_dim, 1)
        self.fusion_drop = nn.Dropout(drop)
        self.cls_drop1 = nn.Dropout(drop)
        self.cls1 = nn.Conv1d(feature_dim, feature_dim, 3, padding=1)
        self.cls_drop2 = nn.Dropout(0.7)
        self.cls2 = nn.Conv1d(feature_dim, num_classes + 1, 1)
        pool_t = int(self.hp["pool_t"])
        self.pool_kernel = (int(self.hp["max_seqlen"]) // pool_t) // 2 * 2 + 1 if pool_t > 0 else 0
        self.apply(_init_weights)

    def _build_attention(self, half: int, hidden: int) -> None:
        """The per-modality attention modules (DDG-Net replaces them with its graph block)."""
        self.rgb_attention = ConsensusAttention(half, hidden)
        self.flow_attention = ConsensusAttention(half, hidden)

    def _attend(
        self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(rgb attention, rgb features, flow attention, flow features, extras) from (B, D/2, T) inputs."""
        rgb_att, rgb_feat = self.rgb_attention(rgb, flow, mask)
        flow_att, flow_feat = self.flow_attention(flow, rgb, mask)
        return rgb_att, rgb_feat, flow_att, flow_feat, {}

    def _pool(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """ActivityNet variant: temporal mean filter (zero padding counted, as the public code)."""
        if not self.pool_kernel:
            return x
        return F.avg_pool1d(_masked(x, mask), self.pool_kernel, 1, self.pool_kernel // 2, count_include_pad=True)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        x = features.transpose(1, 2)  # (B, D, T)
        half = self.feature_dim // 2
        rgb, flow = x[:, :half], x[:, half:]
        rgb_att, rgb_feat, flow_att, flow_feat, extras = self._attend(rgb, flow, mask)
        fused = self.fusion_drop(F.leaky_relu(self.fusion(torch.cat([rgb_feat, flow_feat], 1)), 0.2))
        h = self.cls_drop2(F.leaky_relu(self.cls1(_masked(self.cls_drop1(fused), mask)), 0.2))
        cas = self.cls2(h)
        attention = (rgb_att + flow_att) / 2
        if self.pool_kernel:
            cas = self._pool(cas, mask)
            attention, rgb_att, flow_att = (
                self._pool(a.unsqueeze(1), mask).squeeze(1) for a in (attention, rgb_att, flow_att)
            )
        return BaseOutput(
            embeddings=fused.transpose(1, 2),
            cas=cas.transpose(1, 2),
            attention=attention,
            modality_attention={"rgb": rgb_att, "flow": flow_att},
            extras=extras,
        )

    def base_losses(self, output: BaseOutput, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The CO2-Net terms (already weighted) and the suppressed CAS they share."""
        hp = self.hp
        cas, att = output.cas, output.attention
        rgb, flow = output.modality_attention["rgb"], output.modality_attention["flow"]
        cas_supp = losses.suppress_background(cas, att)
        terms = {
            "mil": losses.topk_mil_loss(cas, batch.labels, hp["k"], background=True).mean(),
            "mil_supp": losses.topk_mil_loss(cas_supp, batch.labels, hp["k"], background=False).mean(),
            "co_activity": hp["alpha3"]
            * losses.co_activity_loss(output.embeddings, cas_supp, batch.labels, int(hp["num_similar"])),
            "mutual": hp["alpha4"] * losses.mutual_attention_loss(rgb, flow),
            "norm": hp["alpha1"] * losses.attention_norm_loss(att, rgb, flow),
            "guide": hp["alpha2"] * losses.attention_guide_loss(cas, att, rgb, flow),
        }
        return terms, cas_supp

    def loss(self, output: BaseOutput, batch: Batch, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms, _ = self.base_losses(output, batch)
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}
