"""DDG-Net (Tang et al., ICCV 2023): DELU with a dynamic graph attention block
(XiaojunTang22/ICCV2023-DDGNet, ``DELU``/``DELU_ACT`` with ``--AWM DDG_Net``), rewritten.

Per modality (RGB, flow) an attention head scores every snippet (no cross-modal gate);
snippets where both attentions are >= ``action_threshold`` are *action*, both below
``background_threshold`` *background*, the rest *ambiguous*.  A graph over snippets uses
the mean of the two modalities' cosine similarities, zeroed below
``similarity_threshold``, each snippet keeping its top ``T // graph_top_k_rat`` neighbours
(by the public rule, which zeroes the others and so settles exact ties: :func:`_video_graph`).
Edges link action to action, background to background, and action or background to an
ambiguous snippet (plus its self-loop), each adjacency L1-normalised per receiving
snippet.  Each modality's features are averaged over the graph (``avg``) and passed through
two graph-convolution layers per action and background subgraph, ambiguous snippets
receiving from both (``gcn``); the new features are ``mix * x + (1 - mix) * (avg + gcn) / 2``
and the same attention heads score them again.  The rest of the network (fusion,
classifier, ActivityNet pooling) and the losses are DELU's, plus the complementary and
feature-consistency losses (:mod:`..losses`).

Padding: the graph only links real snippets of the same video, ``T`` is each video's own
length, and every temporal convolution sees zeros at padded steps, so batched inference
equals one-video-at-a-time inference.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import losses
from .base import BaseOutput, Batch, register_base_method
from .co2net import _masked
from .delu import DELU


class AttentionHead(nn.Module):
    """One modality's attention (the public ``attentions[m]``): conv3-LReLU-dropout, conv3-LReLU,
    conv1, dropout on the logit, sigmoid.  (B, D, T) -> (B, T)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.conv3 = nn.Conv1d(hidden, 1, 1)
        self.drop1 = nn.Dropout(0.5)
        self.drop2 = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.drop1(F.leaky_relu(self.conv1(_masked(x, mask)), 0.2))
        h = F.leaky_relu(self.conv2(_masked(h, mask)), 0.2)
        return torch.sigmoid(self.drop2(self.conv3(h))).squeeze(1)


def _l1_columns(a: torch.Tensor) -> torch.Tensor:
    """Normalise each column (receiving snippet j) of a (B, T, T) adjacency to sum 1 (F.normalize p=1)."""
    return a / a.abs().sum(dim=1, keepdim=True).clamp(min=1e-12)


def _video_graph(rgb: torch.Tensor, flow: torch.Tensor, threshold: float, top_k_rat: float) -> torch.Tensor:
    """The public ``adjacency_matrix`` graph of unpadded videos of one length T: (n, D, T)
    features -> (n, T, T) edge weights [i, j] (i sends to j).

    Mean cosine similarity of the two modalities, set to 0 below ``threshold``; then in each
    column the ``T - k`` smallest entries (``k = T // top_k_rat``; zeros included) are set
    to 0 by ``topk(T - k, dim=1, largest=False, sorted=False)``, the public op.  Keeping
    "the k largest" instead selects the same entries except among exactly equal
    similarities at the boundary, which repeated snippets (random-perturb sampling repeats
    every snippet of a video shorter than ``max_seqlen``) make common; there the kept
    entries are whichever this op leaves, as in the public code.
    """
    length = rgb.shape[2]
    sim_rgb = torch.bmm(F.normalize(rgb, dim=1).transpose(1, 2), F.normalize(rgb, dim=1))
    sim_flow = torch.bmm(F.normalize(flow, dim=1).transpose(1, 2), F.normalize(flow, dim=1))
    sim = (sim_rgb + sim_flow) / 2
    sim = sim.masked_fill(sim < threshold, 0.0)
    k = int(length // top_k_rat)
    smallest = sim.topk(max(length - k, 0), dim=1, largest=False, sorted=False).indices
    return sim.scatter(1, smallest, 0.0)


def similarity_graph(
    rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor, threshold: float, top_k_rat: float
) -> torch.Tensor:
    """(B, T, T) edge weights [i, j] (i sends to j) of :func:`_video_graph`, each video with
    its own length; only real snippets of a video are linked.

    Without padding (every training batch) this is the public op on the whole (B, T, T)
    batch.  With padding (inference), videos of one length go through :func:`_video_graph`
    together on their unpadded features, so each gets its own ``T`` and ``k`` and exactly
    the graph it gets alone (which tied entries ``topk`` leaves depends on the whole
    column, its length included, so a video is never ranked with its padding).  Padding
    must be at the end of each video, as the engine and the samplers pad.
    """
    batch, _, width = rgb.shape
    lengths = mask.sum(dim=1)
    if bool((lengths == width).all()):
        return _video_graph(rgb, flow, threshold, top_k_rat)
    steps = torch.arange(width, device=mask.device)
    if not torch.equal(mask, steps.unsqueeze(0) < lengths.unsqueeze(1)):
        raise ValueError("similarity_graph: padding must be at the end of each video")
    graph = rgb.new_zeros(batch, width, width)
    for length in lengths.unique().tolist():
        if length == 0:
            continue
        rows = torch.nonzero(lengths == length).flatten()
        block = _video_graph(rgb[rows, :, :length], flow[rows, :, :length], threshold, top_k_rat)
        graph[rows, :length, :length] = block
    return graph


class DDGBlock(nn.Module):
    """The DDG_Net attention block: attentions, graph, mixed features, attentions again."""

    def __init__(self, dim: int, hidden: int, hp: dict) -> None:
        super().__init__()
        self.hp = hp
        self.rgb_attention = AttentionHead(dim, hidden)
        self.flow_attention = AttentionHead(dim, hidden)
        # [modality][layer], as the public action_graph / background_graph
        self.action_graph = nn.ModuleList([nn.ModuleList([nn.Conv1d(dim, dim, 1) for _ in range(2)]) for _ in range(2)])
        self.background_graph = nn.ModuleList(
            [nn.ModuleList([nn.Conv1d(dim, dim, 1) for _ in range(2)]) for _ in range(2)]
        )

    def forward(
        self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.hp
        if mask is None:
            mask = torch.ones(rgb.shape[0], rgb.shape[2], dtype=torch.bool, device=rgb.device)
        rgb, flow = _masked(rgb, mask), _masked(flow, mask)
        rgb_att0 = self.rgb_attention(rgb, mask)
        flow_att0 = self.flow_attention(flow, mask)
        action = (rgb_att0 >= hp["action_threshold"]) & (flow_att0 >= hp["action_threshold"]) & mask
        background = (rgb_att0 < hp["background_threshold"]) & (flow_att0 < hp["background_threshold"]) & mask
        ambiguous = mask & ~action & ~background
        sim = similarity_graph(rgb, flow, mask, hp["similarity_threshold"], hp["graph_top_k_rat"])
        eye = torch.eye(sim.shape[1], dtype=torch.bool, device=sim.device).unsqueeze(0)
        certain = action | background
        a_act = _l1_columns(sim * (action.unsqueeze(2) & action.unsqueeze(1)))
        a_bg = _l1_columns(sim * (background.unsqueeze(2) & background.unsqueeze(1)))
        a_amb = _l1_columns(sim * ((certain.unsqueeze(2) & ambiguous.unsqueeze(1)) | (eye & ambiguous.unsqueeze(1))))
        a_amb_from_act = a_amb * action.unsqueeze(2)  # rows: senders
        a_amb_from_bg = a_amb * background.unsqueeze(2)
        a_amb_self = a_amb * eye
        a_all = a_act + a_bg + a_amb
        mix = float(hp["feature_mix"])
        out, distances = [], []
        for m, x in enumerate((rgb, flow)):
            avg = torch.bmm(x, a_all)
            h_act, h_bg = x, x
            for layer_a, layer_b in zip(self.action_graph[m], self.background_graph[m]):
                h_act = F.leaky_relu(torch.bmm(layer_a(h_act), a_act), 0.2)
                h_bg = F.leaky_relu(torch.bmm(layer_b(h_bg), a_bg), 0.2)
            h_amb = torch.bmm(h_act, a_amb_from_act) + torch.bmm(h_bg, a_amb_from_bg) + torch.bmm(x, a_amb_self)
            gcn = h_act + h_bg + h_amb
            out.append(mix * x + (1 - mix) * (avg + gcn) / 2)
            distances.append((avg - gcn).norm(dim=1))
        rgb_new, flow_new = out
        rgb_att = self.rgb_attention(rgb_new, mask)
        flow_att = self.flow_attention(flow_new, mask)
        extras = {
            "ddg_attention": (rgb_att0 + flow_att0) / 2,
            "ddg_action": action,
            "ddg_background": background,
            "ddg_distance_rgb": distances[0],
            "ddg_distance_flow": distances[1],
        }
        return rgb_att, rgb_new, flow_att, flow_new, extras


@register_base_method("ddgnet")
class DDGNet(DELU):
    # Inference holds about 12 (B, T, T) float32 tensors at its peak (measured on the CPU:
    # 11-12 per B*T*T*4 bytes); 2**26 pairs per forward keep that near 3 GB however long the
    # videos are.  The snippet bound alone (262,144 on CUDA) would let THUMOS14's longest test
    # video (2,615 snippets) share a forward with 99 others: ~33 GB.
    max_inference_pairs = 2**26

    def _build_attention(self, half: int, hidden: int) -> None:
        self.ddg = DDGBlock(half, hidden, self.hp)

    def inference_videos_per_chunk(self, longest: int, max_snippets: int) -> int:
        by_pairs = self.max_inference_pairs // max(longest, 1) ** 2
        return max(1, min(super().inference_videos_per_chunk(longest, max_snippets), by_pairs))

    def _attend(self, rgb: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor | None):
        return self.ddg(rgb, flow, mask)

    def loss(self, output: BaseOutput, batch: Batch, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp, ex = self.hp, output.extras
        terms = self.delu_terms(output, batch, iteration)
        terms["feature_consistency"] = hp["alpha5"] * losses.feature_consistency_loss(
            (ex["ddg_distance_rgb"], ex["ddg_distance_flow"]),
            ex["ddg_attention"],
            ex["ddg_action"],
            ex["ddg_background"],
            hp["fc_temperature"],
        )
        terms["complementary"] = hp["alpha6"] * losses.complementary_loss(output.cas, batch.labels)
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}
