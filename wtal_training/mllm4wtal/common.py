"""Small tensor helpers shared by the MLLM4WTAL branches.

Everything here is mask-aware: videos shorter than the batch length T are padded, and
padded snippets must never count in a top-k, a mean or a distillation target.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def valid_lengths(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool -> (B,) long number of real snippets (at least 1)."""
    return mask.long().sum(dim=1).clamp(min=1)


def masked_topk_mean(scores: torch.Tensor, mask: torch.Tensor, k_divisor: int) -> torch.Tensor:
    """Top-k mean over time, k = max(1, length // k_divisor) per video (eqs. 6-7).

    scores: (B, T, K); mask: (B, T) bool.  Returns (B, K).  Vectorised: sort once with
    the largest k over the batch, then weight the first k_b entries of video b.
    """
    batch, length, _ = scores.shape
    k = (valid_lengths(mask) // k_divisor).clamp(min=1)  # (B,)
    k_max = int(k.max())
    filled = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    top = filled.topk(k_max, dim=1).values  # (B, k_max, K)
    keep = torch.arange(k_max, device=scores.device).unsqueeze(0) < k.unsqueeze(1)  # (B, k_max)
    top = torch.where(keep.unsqueeze(-1), top, torch.zeros_like(top))
    return top.sum(dim=1) / k.unsqueeze(1).to(scores.dtype)


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real snippets only; a, b: (B, T)."""
    weight = mask.to(a.dtype)
    return ((a - b) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) fixed sinusoidal position code: no maximum length to outgrow."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    code = torch.zeros(length, dim, device=device)
    code[:, 0::2] = torch.sin(position * freq)
    code[:, 1::2] = torch.cos(position * freq[: code[:, 1::2].shape[1]])
    return code


class ConvAttention(nn.Module):
    """Snippet attention in [0, 1]: a few temporal convolutions then a sigmoid (eqs. 3, 13).

    The same shape as CO2-Net's attention head (conv k3 - LeakyReLU - dropout - conv k3 -
    LeakyReLU - conv k1), with a configurable width.
    """

    def __init__(self, in_dim: int, hidden: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, 1, 1),
        )

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, hidden, T): the first conv and LeakyReLU, i.e. everything before
        the dropout, so it is the same in train and eval mode (the objective computes it once
        per iteration for both its eval-mode targets and the train-mode rec phase)."""
        return self.net[1](self.net[0](x.transpose(1, 2)))

    def from_stem(self, stem: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The rest of the head (dropout, conv, LeakyReLU, conv, sigmoid) on :meth:`stem`'s output."""
        h = stem
        for layer in self.net[2:]:
            h = layer(h)
        return torch.sigmoid(h.squeeze(1)) * mask.to(stem.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T) attention, 0 on padded snippets."""
        return self.from_stem(self.stem(x), mask)
