"""DELU (Chen et al., ECCV 2022): CO2-Net plus evidential learning and uncertainty-guided
course learning (MengyuanChen21/ECCV2022-DELU, classes ``DELU``/``DELU_ACT``).

Same network as CO2-Net; the loss adds (1) an evidential loss on the video logits pooled
over the top-(T // rat_atn) snippets by attention and (2) the guide loss re-weighted per
snippet by a curve over snippet-uncertainty ranks that changes with training progress.
Unlike the public code it works for any batch size (the repository hard-codes 10).
"""

from __future__ import annotations

import torch

from .. import losses
from .base import BaseOutput, Batch, register_base_method
from .co2net import CO2Net


@register_base_method("delu")
class DELU(CO2Net):
    def loss(self, output: BaseOutput, batch: Batch, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self.delu_terms(output, batch, iteration)
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    def delu_terms(self, output: BaseOutput, batch: Batch, iteration: int) -> dict[str, torch.Tensor]:
        """The CO2-Net terms plus DELU's two, each already weighted."""
        hp = self.hp
        terms, cas_supp = self.base_losses(output, batch)
        terms["edl"] = hp["alpha_edl"] * losses.evidential_loss(
            cas_supp, output.attention, batch.labels, hp["rat_atn"], hp["edl_form"]
        )
        terms["uct_guide"] = hp["alpha_uct_guide"] * losses.uncertainty_guide_loss(
            output.cas,
            cas_supp,
            output.attention,
            output.modality_attention["rgb"],
            output.modality_attention["flow"],
            iteration,
            int(hp["iterations"]),
            hp["amplitude"],
            hp["uct_guide_order"],
        )
        return terms
