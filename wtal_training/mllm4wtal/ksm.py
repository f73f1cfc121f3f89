"""Key Semantic Matching (paper §3.1): text queries from MLLM key descriptions, matched
against the base method's snippet embeddings by top-k MIL.

Query of class c: [START, ctx_1..ctx_N, GloVe(key description of c)] -> transformer
encoder -> output at the START position -> linear to the embedding width (2048 for
CO2/DELU).  The background (C+1-th) query is [START, ctx_1..ctx_N, bg] with ``bg`` a
learnable token initialised to zero (the paper: "the (C+1)-th additional context class
embedding is initialized with 0").  Word vectors are frozen rows of tp.word_vectors; the
start, context and background tokens and the encoder are learnt.

Similarity M = <embedding_t, query_j> / sqrt(E): the paper's inner product, with the
usual 1/sqrt(width) temperature so the class softmax is not saturated at initialisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .branches import BranchSetup, MatchBranch, MatchStep, MatchTerms
from .common import ConvAttention, masked_topk_mean
from .plugins import MLLM4WTAL_MODULES
from .text_inputs import key_query_tokens


@MLLM4WTAL_MODULES.register("ksm")
class KeySemanticMatching(MatchBranch):
    """KSM as a match branch of eq. 19 (:mod:`.branches`): L_KSM joins the match loss, and A_KSM
    (the base attention, or KSM's own with ``ksm_attention: own``) is the match side of the
    distillation."""

    def __init__(
        self,
        word_vectors: np.ndarray,
        pad_id: int,
        embedding_dim: int,
        num_classes: int,
        text_dim: int = 512,
        n_context: int = 8,
        heads: int = 8,
        layers: int = 1,
        k_divisor: int = 8,
        own_attention: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        vectors = torch.as_tensor(np.asarray(word_vectors, dtype=np.float32))
        self.words = nn.Embedding.from_pretrained(vectors, freeze=True, padding_idx=pad_id)
        self.word_proj = nn.Linear(vectors.shape[1], text_dim)
        self.start = nn.Parameter(torch.randn(1, 1, text_dim) * 0.02)
        self.context = nn.Parameter(torch.randn(1, n_context, text_dim) * 0.02)
        self.background = nn.Parameter(torch.zeros(1, 1, text_dim))
        layer = nn.TransformerEncoderLayer(
            text_dim, heads, dim_feedforward=4 * text_dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(text_dim)
        self.query_proj = nn.Linear(text_dim, embedding_dim)
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.k_divisor = k_divisor
        self.attention = ConvAttention(embedding_dim) if own_attention else None

    @classmethod
    def build(cls, setup: BranchSetup) -> KeySemanticMatching:
        cfg, tp = setup.settings, setup.text_priors
        return cls(
            tp.word_vectors,
            tp.pad_id,
            setup.embedding_dim,
            setup.base.num_classes,
            text_dim=cfg["text_dim"],
            n_context=cfg["n_context"],
            heads=cfg["text_heads"],
            layers=cfg["text_layers"],
            k_divisor=cfg["k_divisor"],
            own_attention=cfg["ksm_attention"] == "own",
        )

    def match_terms(self, step: MatchStep) -> MatchTerms:
        """Eq. 10 on the batch, with one key description per class drawn from ``step.rng``."""
        batch, out = step.batch, step.output
        keys = key_query_tokens(step.text_priors, batch.video_ids, batch.labels, step.rng, step.settings["ksm_text"])
        device = batch.features.device
        res = self(out.embeddings, batch.mask, keys.ids.to(device), keys.padding.to(device), out.attention)
        loss = self.loss(res["similarity"], res["attention"], batch.mask, batch.labels)
        return MatchTerms(loss, {"ksm_loss": loss.detach()}, res["attention"])

    def target_attention(
        self, embeddings: torch.Tensor, mask: torch.Tensor, base_attention: torch.Tensor
    ) -> torch.Tensor:
        return self.attention(embeddings, mask) if self.attention is not None else base_attention

    def queries(self, key_ids: torch.Tensor, key_padding: torch.Tensor) -> torch.Tensor:
        """(C, L) key-description ids -> (C+1, E) class queries, background last."""
        n_cls = key_ids.shape[0]
        words = self.word_proj(self.words(key_ids))  # (C, L, d)
        fg = torch.cat([self.start.expand(n_cls, -1, -1), self.context.expand(n_cls, -1, -1), words], dim=1)
        prefix = torch.zeros(n_cls, 1 + self.context.shape[1], dtype=torch.bool, device=key_ids.device)
        fg_pad = torch.cat([prefix, key_padding], dim=1)
        bg = torch.cat([self.start, self.context, self.background], dim=1)  # (1, 1+N+1, d)
        bg = F.pad(bg, (0, 0, 0, fg.shape[1] - bg.shape[1]))  # key length >= 1, so fg is never shorter
        bg_pad = torch.ones(1, bg.shape[1], dtype=torch.bool, device=key_ids.device)
        bg_pad[:, : 2 + self.context.shape[1]] = False
        tokens = torch.cat([fg, bg], dim=0)
        padding = torch.cat([fg_pad, bg_pad], dim=0)
        encoded = self.encoder(tokens, src_key_padding_mask=padding)
        return self.query_proj(self.out_norm(encoded[:, 0]))  # (C+1, E)

    def forward(
        self,
        embeddings: torch.Tensor,
        mask: torch.Tensor,
        key_ids: torch.Tensor,
        key_padding: torch.Tensor,
        base_attention: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Similarity M (B, T, C+1) and the branch attention A_KSM (B, T).

        A_KSM is the base method's own attention unless the branch was built with
        ``own_attention`` (then a conv head on the same embeddings, eq. 3).
        """
        queries = self.queries(key_ids, key_padding)
        similarity = torch.einsum("bte,ce->btc", embeddings, queries) / math.sqrt(self.embedding_dim)
        attention = self.attention(embeddings, mask) if self.attention is not None else base_attention
        return {"similarity": similarity, "attention": attention}

    def loss(
        self, similarity: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 10: top-k MIL with (y: background 1) and without (y_hat: background 0) suppression.

        Labels are normalised to a distribution, as in CO2-Net's MIL, so multi-label videos
        do not weigh more.
        """
        suppressed = similarity * attention.unsqueeze(-1)
        s = masked_topk_mean(similarity, mask, self.k_divisor)
        s_hat = masked_topk_mean(suppressed, mask, self.k_divisor)
        ones = torch.ones_like(labels[:, :1])
        y = torch.cat([labels, ones], dim=1)
        y_hat = torch.cat([labels, torch.zeros_like(ones)], dim=1)
        y = y / y.sum(dim=1, keepdim=True).clamp(min=1e-6)
        y_hat = y_hat / y_hat.sum(dim=1, keepdim=True).clamp(min=1e-6)
        loss = -(y * F.log_softmax(s, dim=1)).sum(dim=1) - (y_hat * F.log_softmax(s_hat, dim=1)).sum(dim=1)
        return loss.mean()
