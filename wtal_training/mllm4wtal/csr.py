"""Complete Semantic Reconstruction (paper §3.2): reconstruct the masked words of an MLLM
complete description from the video, through attention weighted by the branch's own
snippet attention A_CSR.

Video side: fused features F (B, T, 2048) -> FC -> 512 (eq. 12); A_CSR = sigmoid(conv
head(F)) (eq. 13; the branch has its own video embedding, so the reconstruction loss
never reaches the base method: CSR talks to the base only through the distillation).
Text side: frozen GloVe rows -> FC -> 512, plus a learnt MASK embedding at masked
positions (the MASK token has no meaningful word vector) and sinusoidal positions.

Attention weighting (eqs. 14-15): every attention over *snippets* (encoder self-attention
and decoder cross-attention) multiplies its post-softmax weights by A_CSR of the key
snippet and renormalises, i.e. softmax(QK^T/sqrt(d) + log A_CSR).  The paper writes the
product inside the softmax; multiplying raw logits would *raise* the weight of
low-attention snippets whose logits are negative, so we read it as the weighting
Boosting-WTAL (its ancestor) applies.  Nothing is causal: the masked words are
reconstructed from the whole sentence and the whole video.

Passes (``passes``): with one attention-weighted pass, L_CSR gives A_CSR no reason to prefer
action snippets (reconstruction from the whole video is as good; measured: A_CSR became a
lagged copy of the base attention, and the text did not need the video).  So, following the
ancestor, the default also reconstructs from the *whole* video (no weighting) and from the
*inverted* attention (weights 1 - A_CSR), batched with the attended pass, and
:meth:`CompleteSemanticReconstruction.contrastive_losses` asks the attended video to
reconstruct best, by margins.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .branches import BranchSetup, ReconstructionBranch
from .common import ConvAttention, sinusoidal_positions
from .plugins import MLLM4WTAL_MODULES


class WeightedAttention(nn.Module):
    """Multi-head attention with an additive per-key bias (log-attention and padding)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"config field csr_heads ({heads}) must divide csr_dim ({dim})")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        # dropout on the attention weights; none at p = 0 (no mask drawn: a (B, h, T, T)
        # Bernoulli draw per layer costs a fifth of a CPU step at T = 320)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, query: torch.Tensor, key: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """query (B, Lq, d), key (B, Lk, d), key_bias (B, Lk) added to every logit on that key."""
        b, lq, d = query.shape
        h = self.heads
        q = self.q(query).view(b, lq, h, d // h).transpose(1, 2)
        k = self.k(key).view(b, -1, h, d // h).transpose(1, 2)
        v = self.v(key).view(b, -1, h, d // h).transpose(1, 2)
        # in place: the same arithmetic without two more (B, h, Lq, Lk) temporaries (the matmul's
        # backward does not need its output)
        logits = (q @ k.transpose(-1, -2)).div_((d // h) ** 0.5).add_(key_bias[:, None, None, :])
        weights = self.drop(torch.softmax(logits, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(b, lq, d))


class _Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, cross: bool, attention_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = WeightedAttention(dim, heads, attention_dropout)
        self.cross = WeightedAttention(dim, heads, attention_dropout) if cross else None
        self.norm2 = nn.LayerNorm(dim) if cross else None
        self.norm3 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, self_bias, memory=None, memory_bias=None):
        y = self.norm1(x)
        x = x + self.drop(self.self_attn(y, y, self_bias))
        if self.cross is not None:
            x = x + self.drop(self.cross(self.norm2(x), memory, memory_bias))
        return x + self.drop(self.ffn(self.norm3(x)))


@MLLM4WTAL_MODULES.register("csr")
class CompleteSemanticReconstruction(ReconstructionBranch):
    """CSR as the reconstruction branch (eq. 20, a phase of its own: :mod:`.branches`)."""

    @classmethod
    def build(cls, setup: BranchSetup) -> CompleteSemanticReconstruction:
        cfg, tp = setup.settings, setup.text_priors
        return cls(
            tp.word_vectors,
            tp.pad_id,
            tp.mask_id,
            setup.base.feature_dim,
            dim=cfg["csr_dim"],
            heads=cfg["csr_heads"],
            layers=cfg["csr_layers"],
            ffn=cfg["csr_ffn"],
            attention_hidden=cfg["csr_attention_hidden"],
            label_smoothing=cfg["csr_label_smoothing"],
            attention_dropout=cfg["csr_attention_dropout"],
        )

    def __init__(
        self,
        word_vectors: np.ndarray,
        pad_id: int,
        mask_id: int,
        feature_dim: int,
        dim: int = 512,
        heads: int = 4,
        layers: int = 2,
        ffn: int = 1024,
        attention_hidden: int = 512,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        attention_dropout: float | None = None,
    ) -> None:
        """``dropout``: on the residual branches, the feed-forward and the video projection;
        ``attention_dropout``: on the attention weights (None: the same as ``dropout``)."""
        super().__init__()
        vectors = torch.as_tensor(np.asarray(word_vectors, dtype=np.float32))
        self.mask_id = mask_id
        self.words = nn.Embedding.from_pretrained(vectors, freeze=True, padding_idx=pad_id)
        self.word_proj = nn.Linear(vectors.shape[1], dim)
        self.mask_embedding = nn.Parameter(torch.randn(dim) * 0.02)
        self.video_proj = nn.Sequential(nn.Linear(feature_dim, dim), nn.Dropout(dropout))
        self.attention = ConvAttention(feature_dim, hidden=attention_hidden)
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.encoder = nn.ModuleList(
            _Block(dim, heads, ffn, dropout, cross=False, attention_dropout=attention_dropout) for _ in range(layers)
        )
        self.decoder = nn.ModuleList(
            _Block(dim, heads, ffn, dropout, cross=True, attention_dropout=attention_dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.vocab_proj = nn.Linear(dim, vectors.shape[0])
        self.label_smoothing = label_smoothing
        self.dim = dim

    def forward(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        word_ids: torch.Tensor,
        word_padding: torch.Tensor,
        attention_stem: torch.Tensor | None = None,
        passes: tuple[str, ...] = ("attended",),
    ) -> dict[str, torch.Tensor]:
        """Word logits per pass (``logits`` for the attended one; ``logits_whole``,
        ``logits_inverse``), each (B, m, V), and A_CSR (B, T).

        ``passes``: any of ``attended`` (keys weighted by A_CSR, eqs. 14-15), ``whole`` (no
        weighting) and ``inverse`` (weighted by 1 - A_CSR); they run as one batch of
        ``len(passes) x B`` sequences sharing the video and word projections.
        ``attention_stem``: ``self.attention.stem(features)`` computed earlier with the
        current weights and with its graph (the objective shares it with its eval-mode
        targets pass); None computes it here.
        """
        if attention_stem is None:
            attention = self.attention(features, mask)
        else:
            attention = self.attention.from_stem(attention_stem, mask)
        video = self.video_proj(features) + sinusoidal_positions(features.shape[1], self.dim, features.device)
        neg_inf = torch.finfo(features.dtype).min
        weights = {"attended": attention, "whole": torch.ones_like(attention), "inverse": 1.0 - attention}
        bias = torch.cat([torch.log(weights[p].clamp(min=1e-6)).masked_fill(~mask, neg_inf) for p in passes])
        n = len(passes)
        video = video.repeat(n, 1, 1)
        for block in self.encoder:
            video = block(video, bias)
        words = self.word_proj(self.words(word_ids))
        words = torch.where((word_ids == self.mask_id).unsqueeze(-1), self.mask_embedding.expand_as(words), words)
        words = words + sinusoidal_positions(word_ids.shape[1], self.dim, features.device)
        word_bias = torch.zeros(word_padding.shape, dtype=features.dtype, device=features.device)
        word_bias = word_bias.masked_fill(word_padding, neg_inf)
        words, word_bias = words.repeat(n, 1, 1), word_bias.repeat(n, 1)
        for block in self.decoder:
            words = block(words, word_bias, video, bias)
        logits = self.vocab_proj(self.norm(words)).chunk(n)
        names = {"attended": "logits", "whole": "logits_whole", "inverse": "logits_inverse"}
        return {**{names[p]: x for p, x in zip(passes, logits)}, "attention": attention}

    def reconstructor_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter but A_CSR's head: what the reconstruction loss trains."""
        own = {id(p) for p in self.attention.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in own]

    @staticmethod
    def sentence_nll(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sentence mean negative log-likelihood of its masked words (B,), has-target (B,) bool)."""
        per_word = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        targeted = targets != -100
        count = targeted.sum(dim=1)
        return per_word.sum(dim=1) / count.clamp(min=1), count > 0

    def contrastive_losses(
        self, out: dict[str, torch.Tensor], targets: torch.Tensor, margin_whole: float, margin_inverse: float
    ) -> dict[str, torch.Tensor]:
        """Boosting-WTAL's two hinges on the per-sentence mean NLL (nats per masked word):
        ``max(0, nll_attended - nll_whole + margin_whole)`` and ``max(0, nll_attended -
        nll_inverse + margin_inverse)``, each a mean over the sentences with a target: the
        attended video must reconstruct better than the whole one and than the rest of it.
        They train A_CSR only (the objective routes them), as the ancestor's mask step."""
        nll_att, has = self.sentence_nll(out["logits"], targets)
        nll_whole, _ = self.sentence_nll(out["logits_whole"], targets)
        nll_inv, _ = self.sentence_nll(out["logits_inverse"], targets)
        if not bool(has.any()):
            zero = out["logits"].sum() * 0.0
            return {"hinge_whole": zero, "hinge_inverse": zero}
        hinge_whole = F.relu(nll_att - nll_whole + margin_whole)[has].mean()
        hinge_inverse = F.relu(nll_att - nll_inv + margin_inverse)[has].mean()
        return {"hinge_whole": hinge_whole, "hinge_inverse": hinge_inverse}

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "sentence_sum") -> torch.Tensor:
        """Eq. 17 over the masked positions only (targets are -100 elsewhere).

        ``sentence_sum`` (default, the paper's form): the negative log-likelihoods of a
        sentence's masked words are summed, then averaged over the sentences that have a
        target, so L_CSR keeps its size relative to lambda2 * MSE in eq. 20 whatever the
        batch size.  ``word_mean``: the mean over all masked words of the batch (the
        earlier behaviour; it divides L_CSR by the number of masked words per sentence).
        """
        if not bool((targets != -100).any()):
            return logits.sum() * 0.0
        per_word = F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, label_smoothing=self.label_smoothing, reduction="none"
        )  # (B, m), 0 where ignored
        targeted = targets != -100
        if reduction == "word_mean":
            return per_word.sum() / targeted.sum()
        has_target = targeted.any(dim=1)
        return per_word.sum(dim=1)[has_target].mean()
