"""CO2-Net / DELU loss terms on inputs small enough to check by hand."""

import math

import torch

from wtal_training import losses


def test_suppress_background_interpolates_between_floor_and_cas():
    cas = torch.tensor([[[1.0, 3.0, -1.0]]])
    assert torch.allclose(losses.suppress_background(cas, torch.tensor([[1.0]])), cas)
    assert torch.allclose(losses.suppress_background(cas, torch.tensor([[0.0]])), torch.full_like(cas, -1.0))
    assert torch.allclose(losses.suppress_background(cas, torch.tensor([[0.5]])), torch.tensor([[[0.0, 1.0, -1.0]]]))


def test_topk_mil_loss_matches_hand_computation():
    # T=4, C=2 (+ background); ratio 2 -> k = 2
    cas = torch.tensor([[[4.0, 0.0, 0.0], [2.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    labels = torch.tensor([[1.0, 0.0]])
    video = torch.tensor([3.0, 1.0, 1.0])  # top-2 means per column
    logp = torch.log_softmax(video, 0)
    expect_bg = -(logp[0] + logp[2]) / (2 + 1e-4)
    expect_nobg = -logp[0] / (1 + 1e-4)
    assert torch.allclose(losses.topk_mil_loss(cas, labels, 2, background=True), expect_bg.reshape(1))
    assert torch.allclose(losses.topk_mil_loss(cas, labels, 2, background=False), expect_nobg.reshape(1))
    assert losses.topk_count(320, 7) == 45 and losses.topk_count(3, 7) == 1


def test_mutual_norm_and_guide():
    rgb, flow = torch.ones(2, 5), torch.zeros(2, 5)
    assert math.isclose(losses.mutual_attention_loss(rgb, flow).item(), 1.0)
    assert math.isclose(losses.attention_norm_loss(rgb, flow).item(), 0.5)
    cas = torch.zeros(2, 5, 3)
    cas[..., -1] = -50.0  # background probability ~0
    assert losses.attention_guide_loss(cas, rgb).item() < 1e-6
    assert math.isclose(losses.attention_guide_loss(cas, flow).item(), 1.0, rel_tol=1e-5)


def test_co_activity_zero_when_pair_foregrounds_match_and_positive_when_swapped():
    t, e = 4, 2
    emb = torch.zeros(2, t, e)
    emb[:, :2, 0] = 1.0  # foreground snippets: direction x
    emb[:, 2:, 1] = 1.0  # background snippets: direction y
    cas = torch.full((2, t, 2), -20.0)
    cas[:, :2, 0] = 20.0  # class 0 active on the foreground
    labels = torch.tensor([[1.0], [1.0]])
    assert losses.co_activity_loss(emb, cas, labels, 1).item() < 1e-6
    cas_bad = cas.clone()
    cas_bad[1, :, 0] = cas[1, :, 0].flip(0)  # second video attends its background
    assert losses.co_activity_loss(emb, cas_bad, labels, 1).item() > 0.4
    assert losses.co_activity_loss(emb, cas, labels, 0).item() == 0.0


def test_evidential_loss_hand_value():
    # C=2; attention picks snippet 0 (k = T // 2 = 1); logits log(3), 0 -> alpha = 4, 2; S = 6, u = 1/3
    cas_supp = torch.tensor([[[math.log(3.0), 0.0, 0.0], [-5.0, -5.0, 0.0]]])
    att = torch.tensor([[0.9, 0.1]])
    labels = torch.tensor([[1.0, 0.0]])
    expect = (1 - 2 / 6) * (math.log(6) - math.log(4))
    assert math.isclose(losses.evidential_loss(cas_supp, att, labels, 2).item(), expect, rel_tol=1e-5)


def test_evidential_loss_relu_mse_form_of_delu_act_hand_value():
    # picked video logits (2, -1) -> ReLU evidence (2, 0) -> alpha (3, 1), S = 4, alpha / S = (.75, .25)
    cas_supp = torch.tensor([[[2.0, -1.0, 0.0], [-5.0, -5.0, 0.0]]] * 2)
    att = torch.tensor([[0.9, 0.1]] * 2)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # a single- and a multi-label video (raw multi-hot y)
    single = (1 - 0.75) ** 2 + (0 - 0.25) ** 2
    multi = (1 - 0.75) ** 2 + (1 - 0.25) ** 2
    got = losses.evidential_loss(cas_supp, att, labels, 2, "relu_mse").item()
    assert math.isclose(got, (single + multi) / 2, rel_tol=1e-6)
    # the exp/log form on the same input: alpha = (e^2 + 1, e^-1 + 1)
    a1, a2 = math.exp(2) + 1, math.exp(-1) + 1
    s = a1 + a2
    u = 2 / s
    exp_single = (1 - u) * (math.log(s) - math.log(a1))
    g1, g2 = (1 / a1) / (1 / a1 + 1 / a2), (1 / a2) / (1 / a1 + 1 / a2)
    exp_multi = (1 - u) * 2 * (g1 * (math.log(s) - math.log(a1)) + g2 * (math.log(s) - math.log(a2)))
    got = losses.evidential_loss(cas_supp, att, labels, 2, "exp_log").item()
    assert math.isclose(got, (exp_single + exp_multi) / 2, rel_tol=1e-6)


def test_delu_evidential_form_per_dataset_family():
    from wtal_training.config import build_config
    from wtal_training.models import build_base_method

    anet = build_config("delu", "activitynet")
    assert anet.own.edl_form == "relu_mse" and build_config("delu", "thumos14").own.edl_form == "exp_log"
    model = build_base_method(anet, 16, 3)
    assert model.hp["edl_form"] == "relu_mse"


def test_uncertainty_curve_and_guide_any_batch_size():
    assert torch.allclose(losses.uncertainty_curve(6, 50, 100, 0.7), torch.ones(6))
    start = losses.uncertainty_curve(4, 0, 100, 0.5)
    assert start[0] < 1 < start[-1] and torch.allclose(start, start.flip(0).neg() + 2)
    torch.manual_seed(0)
    b, t, c = 3, 8, 4  # batch 3: the public code only works for 10
    cas, att = torch.randn(b, t, c + 1), torch.rand(b, t)
    supp = losses.suppress_background(cas, att)
    for order in ("rank", "official"):
        val = losses.uncertainty_guide_loss(cas, supp, att, att, att, 10, 100, 0.7, order)
        assert val.ndim == 0 and torch.isfinite(val)
    # with amplitude 0 the weighting is uniform and equals the plain guide loss
    plain = losses.guide_map(att, cas).mean()
    assert torch.allclose(losses.uncertainty_guide_loss(cas, supp, att, att, att, 10, 100, 0.0), plain)


def test_uncertainty_guide_ranks_by_the_public_alpha_sum_in_float32():
    # DELU's snippet uncertainty is C / sum(exp evidence + 1) (alpha), not C / sum(evidence):
    # equal orders in exact arithmetic, but each "+ 1" rounds the evidence to steps of
    # u = 2^-23.  Evidence in units of u (C = 1, two columns), logits log(e * u):
    #   snippet 1: 401.30 + 401.45 = 802.75 -> alpha 1+401u, 1+401u, S = 2 + 802u
    #   snippet 2: 400.70 + 401.95 = 802.65 -> alpha 1+401u, 1+402u, 2 + 803u rounds
    #              (half-way, to even) to S = 2 + 804u
    # so snippet 1 has more evidence but the smaller S: the two formulas order them oppositely.
    u = 2.0**-23
    close = [[math.log(a * u), math.log(b * u)] for a, b in ((401.30, 401.45), (400.70, 401.95))]
    cas_supp = torch.tensor([[[0.0, 0.0], *close, [10.0, 12.0]]])  # snippet 0: e = 1, 1; 3: e^10 twice
    evidence = losses.exp_evidence(cas_supp)
    assert evidence[0, 1].sum() > evidence[0, 2].sum()  # sum(evidence): 1 more certain than 2
    s = (evidence + 1).sum(-1)[0]
    assert s[1].item() == 2 + 802 * u and s[2].item() == 2 + 804 * u  # alpha: 2 more certain than 1
    # most certain first: 3, 0, 2, 1 (the evidence sum would give 3, 0, 1, 2)
    att = torch.tensor([[0.4, 0.3, 0.2, 0.0]])
    cas = torch.zeros(1, 4, 2)  # background probability 1/2: guide |1/2 - a| = 0.1, 0.2, 0.3, 0.5
    g = [0.1, 0.2, 0.3, 0.5]
    c = [0.5 * math.tanh(theta) + 1 for theta in (-0.75, -0.25, 0.25, 0.75)]  # iteration 0 of 100, A = 0.5
    rank = (g[0] * c[1] + g[1] * c[3] + g[2] * c[2] + g[3] * c[0]) / 4  # snippet t: c[rank of t]
    official = (g[0] * c[3] + g[1] * c[0] + g[2] * c[2] + g[3] * c[1]) / 4  # snippet t: c[order[t]]
    for order, expect in (("rank", rank), ("official", official)):
        got = losses.uncertainty_guide_loss(cas, cas_supp, att, att, att, 0, 100, 0.5, order).item()
        assert math.isclose(got, expect, rel_tol=1e-6), order


def test_evidential_loss_picks_tied_snippets_as_the_public_layout():
    # The public edl_loss top-k's the attention as (B, T, 1); ours as (B, T).  With many exact
    # ties (repeated snippets) the picked snippets, hence the loss, must be the same.
    g = torch.Generator().manual_seed(0)
    att = torch.randint(1, 4, (3, 320), generator=g).float() / 4  # three values: ties everywhere
    cas_supp = torch.randn(3, 320, 6, generator=g)
    labels = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 1]])
    k = 320 // 9  # rat_atn 9: 35 of (about) 107 top-valued snippets
    idx = torch.topk(att.unsqueeze(-1), k, dim=1)[1]  # (B, k, 1), the public call
    picked = cas_supp.gather(1, idx.expand(-1, -1, 6))
    expect = losses.evidential_loss(picked, torch.ones(3, k), labels, 1.0)  # ratio 1: all k rows
    assert math.isclose(losses.evidential_loss(cas_supp, att, labels, 9.0).item(), expect.item(), rel_tol=1e-6)
    # the premise: the tie matters (the last k of the top-valued snippets give another loss)
    last = torch.stack([torch.nonzero(row == 0.75).flatten()[-k:] for row in att])
    other = losses.evidential_loss(cas_supp.gather(1, last[..., None].expand(-1, -1, 6)), torch.ones(3, k), labels, 1.0)
    assert abs(other.item() - expect.item()) > 1e-3
