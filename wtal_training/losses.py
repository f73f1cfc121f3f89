"""The loss terms of CO2-Net, DELU and DDG-Net, one small function each (UM's: models/um.py).

Shapes: B videos, T snippets, C classes; ``cas`` is (B, T, C+1) logits with the
background class last, ``attention`` (B, T) in [0, 1], ``labels`` (B, C) multi-hot.
Training batches carry no padding (random-perturb sampling resamples every video to
exactly ``max_seqlen`` snippets), so these terms take no mask, as in the public code.
Each function returns a scalar unless said otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def topk_count(length: int, ratio: float) -> int:
    """k of the top-k MIL pooling: ``max(1, T // ratio)`` as in both repositories."""
    return max(1, int(length // ratio))


def suppress_background(cas: torch.Tensor, attention: torch.Tensor, include_min: bool = True) -> torch.Tensor:
    """Attention-weighted CAS: ``a * (x - min_c x) + min_c x`` per snippet.

    Subtracting the per-snippet minimum over classes before weighting makes a low
    attention pull every class towards the snippet's floor rather than towards 0.
    """
    floor = cas.min(dim=-1, keepdim=True).values if include_min else torch.zeros_like(cas[..., :1])
    return attention.unsqueeze(-1) * (cas - floor) + floor


def topk_mil_loss(cas: torch.Tensor, labels: torch.Tensor, ratio: float, background: bool) -> torch.Tensor:
    """Top-k multiple-instance loss, per video (B,).

    Video logits are the mean of the k highest snippet logits per class; the target is
    the normalised multi-hot label with the background column set to 1 (plain CAS: every
    untrimmed video contains background) or 0 (suppressed CAS: background is removed).
    """
    k = topk_count(cas.shape[1], ratio)
    video_logits = cas.topk(k, dim=1).values.mean(dim=1)
    back = torch.full_like(labels[:, :1], 1.0 if background else 0.0)
    target = torch.cat([labels, back], dim=-1)
    target = target / (target.sum(dim=-1, keepdim=True) + 1e-4)
    return -(target * F.log_softmax(video_logits, dim=-1)).sum(dim=-1)


def co_activity_loss(embeddings: torch.Tensor, cas: torch.Tensor, labels: torch.Tensor, num_pairs: int) -> torch.Tensor:
    """Co-activity similarity over the same-class pairs (videos 2i, 2i+1), batched.

    Per class, the attention-pooled foreground feature of one video should be closer
    (cosine) to the other's foreground than to the other's background, margin 0.5.
    Averaged over the (pair, shared class) combinations.
    """
    if num_pairs == 0:
        return embeddings.new_zeros(())
    n = cas.shape[1]
    x = embeddings[: 2 * num_pairs].reshape(num_pairs, 2, n, -1)  # (P, 2, T, E)
    weights = F.softmax(cas[: 2 * num_pairs, :, :-1], dim=1).reshape(num_pairs, 2, n, -1)  # (P, 2, T, C)
    fg = torch.einsum("pstc,pste->psce", weights, x)  # (P, 2, C, E)
    bg = torch.einsum("pstc,pste->psce", (1 - weights) / max(n - 1, 1), x)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))

    d_same = distance(fg[:, 0], fg[:, 1])  # (P, C)
    d_fg0_bg1 = distance(fg[:, 0], bg[:, 1])
    d_fg1_bg0 = distance(fg[:, 1], bg[:, 0])
    pair_labels = labels[: 2 * num_pairs].reshape(num_pairs, 2, -1)
    shared = pair_labels[:, 0] * pair_labels[:, 1]  # (P, C)
    hinge = 0.5 * F.relu(d_same - d_fg0_bg1 + 0.5) + 0.5 * F.relu(d_same - d_fg1_bg0 + 0.5)
    return (hinge * shared).sum() / shared.sum().clamp(min=1.0)


def mutual_attention_loss(rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Each modality's attention regresses to the other's (stop-gradient), 0.5 each way."""
    return 0.5 * F.mse_loss(rgb, flow.detach()) + 0.5 * F.mse_loss(flow, rgb.detach())


def attention_norm_loss(*attentions: torch.Tensor) -> torch.Tensor:
    """Mean attention (sparsity), averaged over the given attentions."""
    return sum(a.mean() for a in attentions) / len(attentions)


def guide_map(attention: torch.Tensor, cas: torch.Tensor) -> torch.Tensor:
    """Per-snippet |1 - a - p_background|: attention should mirror the non-background probability."""
    return (1 - attention - cas.softmax(-1)[..., -1]).abs()


def attention_guide_loss(cas: torch.Tensor, *attentions: torch.Tensor) -> torch.Tensor:
    return sum(guide_map(a, cas).mean() for a in attentions) / len(attentions)


def exp_evidence(logits: torch.Tensor) -> torch.Tensor:
    return torch.exp(logits.clamp(-10, 10))


EDL_FORMS = ("exp_log", "relu_mse")


def evidential_loss(
    cas_supp: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor, ratio: float, form: str = "exp_log"
) -> torch.Tensor:
    """DELU's video-level evidential loss (no KL term), in the form of each public model class.

    Video logits: mean suppressed CAS over the top-(T // ratio) snippets by attention,
    background dropped; Dirichlet ``alpha = evidence(logits) + 1``, strength S = sum alpha.

    * ``"exp_log"`` (class ``DELU``, THUMOS14): exp evidence clamped to [-10, 10]; each
      positive class c is pushed by ``g_c (log S - log alpha_c)`` where ``g`` spreads
      ``(1 - u) * |y|`` over the positives inversely to their alpha (u = C / S, detached).
    * ``"relu_mse"`` (class ``DELU_ACT``, ActivityNet1.2): ReLU evidence and the squared
      error ``sum_c (y_c - alpha_c / S)^2`` with the raw multi-hot y (the public code
      computes the variance term too but adds only this one).

    Mean over the batch.
    """
    num_classes = labels.shape[1]
    k = topk_count(cas_supp.shape[1], ratio)
    idx = attention.topk(k, dim=1).indices  # (B, k)
    picked = cas_supp.gather(1, idx.unsqueeze(-1).expand(-1, -1, cas_supp.shape[-1]))[..., :-1]
    video_logits = picked.mean(dim=1)  # (B, C)
    if form == "relu_mse":
        alpha = F.relu(video_logits) + 1
        strength = alpha.sum(dim=-1, keepdim=True)
        return ((labels - alpha / strength) ** 2).sum(dim=-1).mean()
    if form != "exp_log":
        raise ValueError(f"evidential loss form must be one of {EDL_FORMS}, got {form!r}")
    alpha = exp_evidence(video_logits) + 1
    strength = alpha.sum(dim=-1, keepdim=True)
    uncertainty = num_classes / strength
    inverse = labels / alpha
    g = (
        (1 - uncertainty.detach())
        * labels.sum(dim=-1, keepdim=True)
        * inverse
        / inverse.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    )
    return (g * (strength.log() - alpha.log())).sum(dim=-1).mean()


def uncertainty_curve(
    length: int, iteration: int, total_iterations: int, amplitude: float, device=None
) -> torch.Tensor:
    """DELU's course-learning weights over uncertainty ranks (T,): ``A tanh(theta delta) + 1``.

    theta runs from -1 (most certain rank) to 1; delta goes linearly from 1 to -1 over
    training, so the weighting first favours uncertain snippets and ends favouring
    certain ones.
    """
    idx = torch.arange(length, device=device, dtype=torch.float32)
    theta = 2 * (idx + 0.5) / length - 1
    delta = 1 - 2 * iteration / total_iterations
    return amplitude * torch.tanh(theta * delta) + 1


def uncertainty_guide_loss(
    cas: torch.Tensor,
    cas_supp: torch.Tensor,
    attention: torch.Tensor,
    rgb: torch.Tensor,
    flow: torch.Tensor,
    iteration: int,
    total_iterations: int,
    amplitude: float,
    order: str = "rank",
) -> torch.Tensor:
    """Guide loss weighted per snippet by the curve at its uncertainty rank.

    Snippet uncertainty is the public ``uct_guide_loss``'s ``C / S``: Dirichlet
    ``alpha = exp evidence + 1`` of the suppressed CAS, ``S`` summed over all C+1 columns.
    ``C / sum(evidence)`` ranks the same in exact arithmetic but not in float32, where each
    ``+ 1`` rounds the evidence to steps of 2^-23 (evidence below 1): snippets closer than
    that tie in the public code, and the rounding can even reverse two close ones.  So S
    is formed as there, and the snippets are ordered by the same ``torch.sort`` (ties as
    there).  ``order="rank"`` gives
    snippet t the weight at its own rank; ``"official"`` reproduces the repository's
    gather (weight at the rank position t of the snippet index) - see docs/method.md.
    """
    num_classes = cas.shape[-1] - 1
    batch, length = attention.shape
    alpha = exp_evidence(cas_supp) + 1
    snippet_uncertainty = num_classes / alpha.sum(dim=-1)  # (B, T)
    curve = uncertainty_curve(length, iteration, total_iterations, amplitude, device=cas.device)
    order_idx = torch.sort(snippet_uncertainty, dim=1).indices
    if order == "official":
        weights = curve[order_idx]
    else:
        ranks = order_idx.argsort(dim=1)
        weights = curve[ranks]
    guide = (guide_map(attention, cas) + guide_map(rgb, cas) + guide_map(flow, cas)) / 3
    return (weights.detach() * guide).mean()


def complementary_loss(cas: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DDG-Net's complementary learning: every snippet's probability of each class the video
    does *not* contain is pushed to 0, ``-sum_c (1 - y_c) log(1 - p_c)`` (background counts as
    present; ``1 - p`` clamped at 1e-6), mean over snippets and videos."""
    present = torch.cat([labels, torch.ones_like(labels[:, :1])], dim=-1).unsqueeze(1)  # (B, 1, C+1)
    probs = cas.softmax(dim=-1)
    return (-(1 - present) * torch.log((1 - probs).clamp(min=1e-6))).sum(dim=-1).mean()


def feature_consistency_loss(
    distances: tuple[torch.Tensor, ...],
    attention: torch.Tensor,
    action: torch.Tensor,
    background: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """DDG-Net's feature consistency: the graph-averaged and graph-convolved features of a
    snippet should agree, on confident action and background snippets.

    ``distances``: per modality (B, T) ``||avg_t - gcn_t||``; ``attention`` (B, T) the
    pre-graph mean attention a (detached here); ``action``/``background`` (B, T) bool.
    Action snippets weigh ``exp(-(1/a - 1) / temperature)``, background ones
    ``exp(-(1/(1-a) - 1) / temperature)``; per video a weighted mean (weights summed with a
    floor of 1e-3), summed over videos and divided by the number of videos that have any
    such snippet; the modalities are averaged (0.5 each), as in the public ``cp_loss``.
    """
    a = attention.detach()
    with torch.no_grad():
        w_act = torch.where(action, torch.exp(-(1 / a - 1) / temperature), torch.zeros_like(a))
        w_bg = torch.where(background, torch.exp(-(1 / (1 - a) - 1) / temperature), torch.zeros_like(a))
    n_act = action.any(dim=1).sum().clamp(min=1)  # a tensor: no host sync per iteration
    n_bg = background.any(dim=1).sum().clamp(min=1)

    def weighted(d: torch.Tensor, w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return ((w * d).sum(dim=1) / w.sum(dim=1).clamp(min=1e-3)).sum() / count

    total = sum(weighted(d, w_act, n_act) + weighted(d, w_bg, n_bg) for d in distances)
    return total / len(distances)
