"""The test-time module of an MLLM4WTAL run: the base method plus the localization head (the
text branches never run at inference, paper §3.4)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.base import BaseMethod, BaseOutput
from .loc_head import LocalizationHead

HEAD_OUTPUTS = ("loc_scores", "loc_offsets")  # the head's per-snippet outputs (loc_head.py's contract)


class InferenceModel(nn.Module):
    """Base method plus the localization head: the whole test-time graph."""

    def __init__(self, base: BaseMethod, head: LocalizationHead | None) -> None:
        super().__init__()
        self.base = base
        self.head = head

    @property
    def test_outputs(self) -> tuple[str, ...]:
        """The ``extras`` inference keeps per video: the base method's, then the head's."""
        return (*self.base.test_outputs, *(HEAD_OUTPUTS if self.head is not None else ()))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        out = self.base(features, mask)
        if self.head is not None:
            logits, offsets = self.head(out.embeddings, mask)
            out.extras["loc_scores"] = torch.sigmoid(logits)
            out.extras["loc_offsets"] = offsets
        return out


def embedding_dim(base: BaseMethod, device: torch.device) -> int:
    """Embedding width from one dry forward in eval mode (no width is hard-coded)."""
    was_training = base.training
    base.eval()
    with torch.no_grad():
        out = base(
            torch.zeros(1, 16, base.feature_dim, device=device), torch.ones(1, 16, dtype=torch.bool, device=device)
        )
    base.train(was_training)
    return int(out.embeddings.shape[-1])


def build_head(settings: dict[str, Any], base: BaseMethod, device: torch.device) -> LocalizationHead | None:
    """The localization head of these settings (None when ``loc_head`` is off)."""
    if not settings["loc_head"]:
        return None
    width = settings["embedding_dim"] or embedding_dim(base, device)
    return LocalizationHead(width, base.num_classes, hidden=settings["loc_hidden"]).to(device)
