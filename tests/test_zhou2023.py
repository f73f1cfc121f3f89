"""Zhou et al. 2023 (``zhou2023``): the network's pieces and loss terms by hand, masking and
batched inference, proposals / fusion / pseudo-labels, the training schedule, and training
through the engine with and without the MLLM4WTAL plug-ins (tiny shapes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.toy_data import make_toy_dataset
from helpers.training_configs import TINY_BRANCHES

from wtal_common.errors import ConfigError
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.inference import infer
from wtal_training.models import build_base_method
from wtal_training.models.base import BaseOutput
from wtal_training.models.zhou2023 import (
    attention_loss,
    distillation_loss,
    expectation_maximisation,
    normalised_cross_entropy,
    random_walk,
    responsibilities,
    soft_label_loss,
    video_losses,
)
from wtal_training.models.zhou2023_pseudo import (
    class_proposals,
    fuse_proposals,
    solve_snippet_labels,
    video_pseudo_labels,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=32, signal=3.0, length_range=(30, 70))


def tiny(**hp):
    torch.manual_seed(0)
    return build_base_method(build_config("zhou2023", "thumos14"), 16, 3).eval() if not hp else _with(hp)


def _with(hp):
    config = build_config("zhou2023", "thumos14").updated(hp)
    return build_base_method(config, 16, 3).eval()


# -- defaults -----------------------------------------------------------------------------------
def test_defaults_are_the_public_options():
    c = build_config("zhou2023", "thumos14")
    z, opt = c.own, c.optimiser
    assert (c.data.batch_size, c.data.num_similar, opt.iterations, opt.lr, opt.weight_decay) == (
        10,
        0,
        7000,
        5e-5,
        5e-4,
    )
    assert (c.model.dropout_ratio, z.gaussians, z.em_iterations, z.walk_weight, z.cosine_scale) == (
        0.6,
        8,
        2,
        0.5,
        20.0,
    )
    assert (z.memory_slots, z.frame_mix, z.pseudo_mix, z.spl_temperature) == (5, 0.85, 0.8, 0.2)
    assert (z.fore_weight, z.back_weight, z.att_weight, z.spl_weights) == (1.0, 0.2, 0.1, [1.0, 0.5, 1.0])
    assert (z.distill_weight, z.distill_growth, z.distill_max, z.warmup_epochs) == (10.0, 1.035, 50.0, 100)
    assert z.snapshot_epochs == [200, 230, 245, 260, 275, 300]
    assert z.snapshot_temperatures == pytest.approx([0.02, 0.02, 0.02, 0.002, 0.002, 0.0016])
    assert (z.delta_epochs, z.delta_scales, z.snapshot_dropout) == ([250, 300], [2.0, 2.15], True)
    lrs = [opt.lr * f for f in z.lr_step_factors]  # the public changeLR_value
    assert lrs == pytest.approx([5e-5, 4e-5, 2.048e-5, 5.12e-7, 2.56e-7]) and z.lr_step_epochs == [80, 200, 245, 260]
    assert z.cas_thresholds == pytest.approx(np.arange(0.001, 0.04, 0.002).tolist())
    assert (c.test.class_threshold, z.fusion_temperature) == (0.16, 0.2)
    a = build_config("zhou2023", "activitynet")
    assert (a.optimiser.iterations, a.optimiser.lr, a.own.warmup_epochs, a.own.snapshot_epochs[0]) == (
        35000,
        3e-5,
        10,
        20,
    )


def test_schedules_must_pair_up():
    with pytest.raises(ConfigError, match="snapshot_temperatures"):
        _with({"snapshot_temperatures": [0.02]})
    with pytest.raises(ConfigError, match="lr_step_factors"):
        _with({"lr_step_factors": [1.0]})
    with pytest.raises(ConfigError, match="increasing"):
        _with({"delta_epochs": [300, 250]})


# -- network pieces -----------------------------------------------------------------------------
def test_em_with_one_centre_is_the_mean_of_the_real_snippets():
    x = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    mu = expectation_maximisation(torch.randn(1, 1, 2), x, mask, 1)
    assert torch.allclose(mu, torch.tensor([[[2.0, 1.0]]]), atol=1e-6)


def test_responsibilities_are_a_softmax_of_five_times_the_cosine():
    centres = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    x = torch.tensor([[[3.0, 0.0], [1.0, 1.0]]])
    z = responsibilities(centres, x, torch.ones(1, 2, dtype=torch.bool))
    p = 1 / (1 + math.exp(-5.0))  # snippet 0: cosines (1, 0)
    assert torch.allclose(z[0, :, 0], torch.tensor([p, 1 - p]), atol=1e-6)
    assert torch.allclose(z[0, :, 1], torch.tensor([0.5, 0.5]), atol=1e-6)  # equal cosines


def test_random_walk_equals_the_public_closed_form_and_ignores_padding():
    torch.manual_seed(0)
    x, centres, w = torch.randn(1, 7, 5), torch.randn(1, 3, 5), 0.5
    mask = torch.ones(1, 7, dtype=torch.bool)
    z = responsibilities(centres, x, mask)[0]  # (K, T)
    zn = z / (z.sum(-1, keepdim=True) + 1e-9)
    inverse = torch.inverse(torch.eye(7) - w**2 * z.T @ zn)  # the public T x T inverse
    expect = (1 - w) * inverse @ (w * z.T @ centres[0] + x[0])
    got = random_walk(x, centres, mask, w)
    assert torch.allclose(got[0], expect, atol=1e-5)
    padded = torch.cat([x, torch.randn(1, 4, 5) * 9], dim=1)
    pmask = torch.tensor([[True] * 7 + [False] * 4])
    assert torch.allclose(random_walk(padded * pmask.unsqueeze(-1), centres, pmask, w)[:, :7], got, atol=1e-5)


def test_forward_contract_mapping_and_padding():
    model = tiny()
    x = torch.randn(1, 12, 16)
    alone = model(x, torch.ones(1, 12, dtype=torch.bool))
    assert alone.cas.shape == (1, 12, 4) and alone.attention.shape == (1, 12) and alone.embeddings.shape == (1, 12, 16)
    ex = alone.extras
    mix = 0.85
    probs = mix * ex["logits_o"].softmax(-1) + (1 - mix) * ex["logits_m"].softmax(-1)
    assert torch.allclose(alone.cas.softmax(-1), probs, atol=1e-6)
    assert torch.allclose(ex["video_scores"][:, 0], 0.6 * ex["video_fg_o"] + 0.4 * ex["video_fg_m"], atol=1e-6)
    assert ((alone.attention > 0) & (alone.attention < 1)).all()
    padded = torch.cat([x, torch.randn(1, 30, 16) * 5], dim=1)
    out = model(padded, torch.tensor([[True] * 12 + [False] * 30]))
    for key in ("logits_o", "logits_m", "video_scores"):
        assert torch.allclose(out.extras[key][:, :12], ex[key], atol=1e-5), key
    assert torch.allclose(out.attention[:, :12], alone.attention, atol=1e-6)


def test_batched_inference_equals_single_video(toy):
    data = load_data(toy, "cpu")
    torch.manual_seed(0)
    model = build_base_method(build_config("zhou2023", "thumos14"), 32, 3).eval()
    batched = infer(model, data.test, max_snippets=10_000)
    single = infer(model, data.test, max_snippets=1)
    for vid in data.test.video_ids:
        assert set(batched[vid]) == {"cas", "attention", "video_scores"}
        for key in batched[vid]:
            np.testing.assert_allclose(batched[vid][key], single[vid][key], atol=1e-5, err_msg=f"{vid} {key}")


# -- loss terms by hand ---------------------------------------------------------------------------
def test_normalised_cross_entropy_attention_and_soft_label_losses_by_hand():
    probs = torch.tensor([[0.5, 0.25, 0.25]])
    nce = normalised_cross_entropy(probs, torch.tensor([[1.0, 1.0, 0.0]]))
    assert math.isclose(nce.item(), -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)), rel_tol=1e-6)
    att = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.2, 0.3, 0.8, 0.4, 0.6, 0.05, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.99]])
    mask = torch.ones_like(att, dtype=torch.bool)
    mask[0, -1] = False  # 16 real snippets: k = 2; the padded 0.99 is never the top
    assert math.isclose(attention_loss(att, mask).item(), (0.05 + 0.1) / 2 - (0.95 + 0.9) / 2, rel_tol=1e-6)
    logits, target = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 0.4]]])
    q = 1 / (1 + math.exp(-0.4 / 0.2))  # softmax(target / 0.2)[1]
    p1 = 1 / (1 + math.exp(-(0 - 1.0) / 0.2))  # softmax(logits / 0.2)[1]
    expect = -((1 - q) * math.log(1 - p1) + q * math.log(p1))
    got = soft_label_loss(logits, target, torch.ones(1, 1, dtype=torch.bool), 0.2)
    assert math.isclose(got.item(), expect, rel_tol=1e-5)


def test_distillation_loss_by_hand_with_a_negative_delta_label():
    lo, lm = torch.tensor([[[0.0, 0.0]]]), torch.tensor([[[math.log(3.0), 0.0]]])  # softmax: (.5, .5), (.75, .25)
    pseudo = torch.tensor([[[1.0, -0.5]]])
    got = distillation_loss(lo, lm, pseudo, torch.ones(1, 1, dtype=torch.bool), 0.8)
    ce_o = -(1.0 * math.log(0.5) - 0.5 * math.log(0.5))
    ce_m = -(1.0 * math.log(0.75) - 0.5 * math.log(0.25))
    assert math.isclose(got.item(), 0.8 * ce_o + 0.2 * ce_m, rel_tol=1e-6)


def _output(probs_fg_o, probs_fg_m, probs_cw_o, probs_cw_m, att, logits_o, logits_m):
    t = lambda v: torch.tensor(v).unsqueeze(0)  # noqa: E731
    extras = {
        "video_fg_o": t(probs_fg_o),
        "video_fg_m": t(probs_fg_m),
        "video_cw_o": t(probs_cw_o),
        "video_cw_m": t(probs_cw_m),
        "logits_o": t(logits_o),
        "logits_m": t(logits_m),
    }
    n = len(att)
    return BaseOutput(embeddings=torch.zeros(1, n, 4), cas=torch.zeros(1, n, 3), attention=t(att), extras=extras)


def test_video_losses_weigh_each_term_as_the_public_total():
    model = _with(
        {"fore_weight": 1.5, "back_weight": 0.2, "att_weight": 0.1, "spl_temperature": 1.0, "pseudo_mix": 0.8}
    )
    out = _output(
        [0.5, 0.25, 0.25],  # fg, original branch
        [0.25, 0.25, 0.5],  # fg, propagated
        [0.6, 0.2, 0.2],  # cw, original
        [0.2, 0.2, 0.6],  # cw, propagated
        [0.9, 0.1],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        [[math.log(2.0), 0.0, 0.0], [math.log(2.0), 0.0, 0.0]],
    )
    labels, mask = torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    pseudo = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    terms = video_losses(model, out, labels, mask, pseudo=pseudo, spl_weight=0.5, distill_weight=3.0)
    fore = -math.log(0.5) - math.log(0.25)  # background 0: only class 0
    back = -(0.5 * math.log(0.6) + 0.5 * math.log(0.2)) - (0.5 * math.log(0.2) + 0.5 * math.log(0.6))
    att = 0.1 - 0.9  # k = max(1, 2 // 8) = 1
    # target softmax(logits_m / 1) = (.5, .25, .25); prediction softmax(0) = 1/3 each
    spl = -math.log(1 / 3)
    dist = 0.8 * -math.log(1 / 3) + 0.2 * -(0.5 * math.log(0.5) + 0.5 * math.log(0.25))
    expect = {"fore": 1.5 * fore, "back": 0.2 * back, "att": 0.1 * att, "spl": 0.5 * spl, "distill": 3.0 * dist}
    assert set(terms) == set(expect)
    for name, value in expect.items():
        assert math.isclose(terms[name].item(), value, rel_tol=1e-5), name
    assert "distill" not in video_losses(model, out, labels, mask, pseudo=None)


def test_memory_branch_adds_half_weighted_video_terms_and_a_fifth_of_the_target():
    model = tiny()
    torch.manual_seed(1)
    x, mask = torch.randn(2, 9, 16), torch.ones(2, 9, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    model.memory_centres.normal_()
    out = model(x, mask)
    plain = video_losses(model, out, labels, mask)
    centres, valid = model.memory_for(labels)
    assert valid.sum(1).tolist() == [5, 10] and torch.equal(centres[1, 5:10], model.memory_centres[2])
    with_memory = video_losses(model, out, labels, mask, memory=(centres, valid))
    r = model.predict(random_walk(out.embeddings, centres, mask, 0.5, valid), mask)
    fg = torch.cat([labels, torch.zeros(2, 1)], 1)
    bg = torch.cat([labels, torch.ones(2, 1)], 1)
    assert torch.allclose(with_memory["fore"] - plain["fore"], 0.5 * normalised_cross_entropy(r.video_fg, fg))
    assert torch.allclose(with_memory["back"] - plain["back"], 0.2 * 0.5 * normalised_cross_entropy(r.video_cw, bg))
    target = 0.2 * r.frame_logits + 0.8 * out.extras["logits_m"]
    expect_spl = soft_label_loss(out.extras["logits_o"], target, mask, 0.2)
    assert torch.allclose(with_memory["spl"], expect_spl)


def test_memory_update_keeps_the_best_scoring_centres_per_labelled_class():
    model = _with({"memory_slots": 2})
    model.memory_scores[0] = torch.tensor([0.9, 0.1])
    model.memory_centres[0] = torch.tensor([[1.0] * 16, [2.0] * 16])
    centres = torch.stack([torch.full((16,), 10.0), torch.full((16,), 20.0)]).unsqueeze(0).repeat(1, 4, 1)[:, :8]
    scores = torch.zeros(1, 8, 4)
    scores[0, 1, 0] = 0.5  # centre 1 (value 20) beats the bank's 0.1 for class 0
    scores[0, 0, 1] = 0.7  # class 1 is not labelled: untouched
    model.update_memory(centres, scores, torch.tensor([[1.0, 0.0, 0.0]]))
    assert model.memory_scores[0].tolist() == pytest.approx([0.9, 0.5])
    assert model.memory_centres[0, :, 0].tolist() == [1.0, 20.0]
    assert model.memory_scores[1].abs().sum() == 0


# -- proposals, fusion, pseudo-labels -------------------------------------------------------------
def test_class_proposals_follow_the_public_run_and_contrast_rules():
    frame = np.array([0.0, 0.0, 0.0, 0.02, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0])
    props = class_proposals(frame, [0.01])
    # run [3, 5) -> segment [3, 6); inner = mean(frame[3:6]) (the public extra snippet);
    # margin 0.0785 * 2 ** 0.9 = 0.15 -> outer [2, 3) and [6, 6) (empty right: 6 = trunc(5.15 + 1))
    assert props.shape == (1, 4)
    inner = 0.04 / 3
    assert np.allclose(props[0], [3, 6, inner - 0.0, inner])
    assert len(class_proposals(np.array([0.0, 0.5, 0.0]), [0.01])) == 0  # one snippet: too short


def test_fusion_weights_by_exp_inner_over_temperature():
    props = np.array(
        [
            [0.0, 10.0, 0.9, 0.5],  # best
            [1.0, 11.0, 0.5, 0.3],  # overlaps 10 / 11 of its length: fused with the best
            [20.0, 24.0, 0.4, 0.2],  # apart
        ]
    )
    fused = fuse_proposals(props, temperature=0.1)
    w1, w2 = math.exp(0.5 / 0.1), math.exp(0.3 / 0.1)
    expect0 = [(0 * w1 + 1 * w2) / (w1 + w2), (10 * w1 + 11 * w2) / (w1 + w2), (0.9 * w1 + 0.5 * w2) / (w1 + w2)]
    assert np.allclose(fused[0], expect0) and np.allclose(fused[1], [20, 24, 0.4])
    cold = fuse_proposals(props, temperature=1e-4)  # huge exponent: no overflow, the best wins
    assert np.allclose(cold[0], [0, 10, 0.9])


def test_pseudo_labels_solve_the_contrast_constraints():
    # segment [2, 4), score 0.5: outer [1, 2) and [4, 5) -> x2 + x3 - x1 - x4 = 0.5, least sum 0.5
    solved = solve_snippet_labels(np.array([[2.0, 4.0, 0.5]]), 6)
    assert solved is not None and math.isclose(solved.sum(), 0.5, abs_tol=1e-6)
    assert math.isclose(solved[2] + solved[3] - solved[1] - solved[4], 0.5, abs_tol=1e-6)
    assert solved[0] == 0 and solved[5] == 0
    assert solve_snippet_labels(np.array([[2.0, 4.0, 3.0]]), 6) is None  # 2 inner snippets cannot sum 3
    frame = np.zeros((12, 3))
    frame[4:8, 1] = 0.03
    labels, failed = video_pseudo_labels(np.array([0.1, 0.8, 0.1]), frame, 0.16, [0.01, 0.02], 0.02)
    assert failed == 0 and labels[:, 0].sum() == 0 and labels[:, 2].sum() == 0 and labels[4:9, 1].sum() > 0


# -- training: the method's sampler, schedules, the engine ---------------------------------------
SHORT = [
    "warmup_epochs=0",
    "snapshot_epochs=[1, 2]",
    "snapshot_temperatures=[0.02, 0.02]",
    "delta_epochs=[2]",
    "delta_scales=[2.0]",
    "lr_step_epochs=[1]",
    "lr_step_factors=[1.0, 0.5]",
    "lr=1e-3",
    "log_every=3",
    "checkpoint_every=3",
    "num_timeline_videos=0",
]


def test_sampler_epochs_of_whole_videos_and_the_stage_schedule(toy):
    from wtal_training.models.zhou2023_training import Zhou2023Training

    data = load_data(toy, "cpu")
    config = build_config("zhou2023", "thumos14")
    model = build_base_method(config, 32, 3)
    sampler = model.training_sampler(data.train, config, seed=0)
    assert isinstance(sampler, Zhou2023Training) and sampler.iterations_per_epoch == 3  # 24 videos, batches of 10
    seen = []
    for _ in range(3):
        batch = sampler.sample()
        lengths = batch.mask.sum(1)
        assert torch.equal(lengths, data.train.lengths[batch.extras["video_index"]])  # whole videos
        for b, v in enumerate(batch.extras["video_index"].tolist()):
            assert torch.equal(batch.features[b, : lengths[b]], data.train.video(v))
        seen += batch.extras["video_index"].tolist()
    assert sorted(seen) == list(range(24)) and len(batch.video_ids) == 4  # one epoch; the last batch holds 4
    # the public schedule: memory after epoch 100, spl 1 / 0.5 / 1, distillation 10 x 1.035^(e - 200) <= 50
    sampler.memory_filled, sampler.latest = True, torch.zeros(1)
    assert sampler.stage(100) == {"epoch": 100, "use_memory": False, "spl_weight": 1.0, "distill_weight": 0.0}
    assert sampler.stage(101)["use_memory"] and sampler.stage(200)["spl_weight"] == 0.5
    assert sampler.stage(200)["distill_weight"] == 0.0 and sampler.stage(201)["spl_weight"] == 1.0
    assert sampler.stage(210)["distill_weight"] == pytest.approx(10 * 1.035**10)
    assert sampler.stage(349)["distill_weight"] == 50.0
    lr = [sampler.learning_rate_scale(1 + 3 * e) for e in (0, 79, 80, 199, 200, 244, 245, 259, 260, 349)]
    assert lr == pytest.approx([1, 1, 0.8, 0.8, 0.4096, 0.4096, 0.01024, 0.01024, 0.00512, 0.00512])
    sampler.latest, sampler.previous = torch.ones(2, 4), torch.full((2, 4), 0.25)
    assert torch.equal(sampler.pseudo_target(250), sampler.latest)  # epochs 201-250: the latest labels
    assert torch.allclose(sampler.pseudo_target(251), torch.full((2, 4), 1.5))  # then 2 x (latest - previous)
    assert torch.allclose(sampler.pseudo_target(301), torch.full((2, 4), 2.15 * 0.75))


def test_train_max_snippets_cuts_long_videos_and_keeps_their_pseudo_labels_aligned(toy):
    """Toy videos are 30-70 snippets: with a cap of 40, longer ones are cut to 40 snippets in
    order, one per equal bin (random-perturb), shorter ones stay whole; each kept snippet
    carries its own packed row's features and pseudo-label."""
    data = load_data(toy, "cpu")
    config = build_config("zhou2023", "thumos14", sets=[*SHORT[:5], "train_max_snippets=40"])
    model = build_base_method(config, 32, 3)
    sampler = model.training_sampler(data.train, config, seed=0)
    packed = torch.arange(data.train.features.shape[0], dtype=torch.float32)
    sampler.latest = torch.stack([packed, -packed], 1)  # (rows, C + 1 = 2) labels naming their row
    sampler.memory_filled = True
    sampler.drawn = sampler.iterations_per_epoch * 2  # epoch 2: after the first snapshot (1)
    sampler.begin_epoch = lambda epoch: setattr(sampler, "order", torch.arange(len(data.train)))
    batch = sampler.sample()
    lengths = data.train.lengths[batch.extras["video_index"]]
    assert bool((lengths > 40).any()) and bool((lengths <= 40).any())
    assert batch.features.shape[1] == 40
    assert torch.equal(batch.mask.sum(1), lengths.clamp(max=40))
    for b, v in enumerate(batch.extras["video_index"].tolist()):
        n, offset = int(batch.mask[b].sum()), int(data.train.offsets[v])
        rows = batch.extras["pseudo_labels"][b, :n, 0].long()
        assert torch.equal(batch.extras["pseudo_labels"][b, :n, 1], -rows.float())
        assert torch.equal(batch.features[b, :n], data.train.features[rows])
        local = rows - offset
        if int(lengths[b]) <= 40:
            assert torch.equal(local, torch.arange(n))  # whole, in order
        else:  # one snippet from each of 40 bins [floor(i L / 40), floor((i + 1) L / 40)]
            i = torch.arange(40)
            low, high = (i * lengths[b]) // 40, ((i + 1) * lengths[b]) // 40
            assert bool(((local >= low) & (local <= high.clamp(max=int(lengths[b]) - 1))).all())
            assert bool((local[1:] >= local[:-1]).all())
    whole = build_config("zhou2023", "thumos14")
    assert whole.own.train_max_snippets == 0  # the default: whole videos, the public code


@pytest.mark.parametrize("modules", [[], ["ksm", "csr"]])
def test_trains_through_memory_and_snapshots_with_and_without_plugins(toy, tmp_path, modules, caplog):
    import json

    from helpers.mllm4wtal_fakes import FakeTextPriors

    from wtal_training.training import train_seed

    data = load_data(toy, "cpu")
    config = build_config("zhou2023", "thumos14", sets=SHORT, iterations=12, modules=modules)
    priors = None
    if modules:
        config = config.updated({"mllm4wtal": TINY_BRANCHES})
        priors = FakeTextPriors(classes=data.gt["classes"])
    caplog.set_level("INFO", logger="wtal_training")
    result = train_seed(data, config, 0, tmp_path, text_priors=priors, progress=False)
    assert np.isfinite(result["average_mAP"]["0.1:0.7"])
    assert "memory bank filled" in caplog.text and caplog.text.count("zhou2023: snapshot") == 2
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    prefix = "base/" if modules else ""
    assert f"{prefix}distill" in header and "nan" not in ",".join(rows[1:])
    distill = [float(r.split(",")[header.index(f"{prefix}distill")] or 0) for r in rows[1:]]
    assert distill[0] == 0 and distill[-1] != 0  # epochs 0-2 without, epoch 3 with the (signed) delta labels
    preds = json.loads((tmp_path / "predictions.json").read_text())["results"]
    assert set(preds) == set(data.test.video_ids)


def test_learning_rate_schedule_and_betas_reach_the_optimizer(toy, tmp_path):
    from wtal_training.training import scale_learning_rate, setup_seed_run

    data = load_data(toy, "cpu")
    config = build_config("zhou2023", "thumos14", sets=SHORT, iterations=6)
    run = setup_seed_run(data, config, 0, tmp_path, None, None)
    group = run.objective.optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.99)
    scale_learning_rate(run, 3)  # epoch 0
    assert group["lr"] == pytest.approx(1e-3)
    scale_learning_rate(run, 4)  # epoch 1: after lr_step_epochs[0] = 1 (1-based)
    assert group["lr"] == pytest.approx(5e-4) and group["initial_lr"] == pytest.approx(1e-3)


def test_sampler_state_round_trips(toy):
    data = load_data(toy, "cpu")
    config = build_config("zhou2023", "thumos14", sets=SHORT)
    model = build_base_method(config, 32, 3)
    a = model.training_sampler(data.train, config, seed=0)
    for _ in range(5):
        a.sample()
    b = model.training_sampler(data.train, config, seed=0)
    b.load_state_dict(a.state_dict())
    b.generator.set_state(a.generator.get_state())
    assert torch.equal(a.sample().extras["video_index"], b.sample().extras["video_index"])


def test_killed_run_resumes_with_its_memory_and_pseudo_labels(toy, tmp_path, monkeypatch):
    """Killed at iteration 13 (after both snapshots, in the delta-label epoch), resumed from the
    iteration-12 state: the final weights equal the uninterrupted run's (CPU, one thread)."""
    from safetensors.torch import load_file

    from wtal_training.objectives import PlainObjective
    from wtal_training.training import train_seed

    data = load_data(toy, "cpu")
    sets = [s for s in SHORT if not s.startswith(("log_every", "checkpoint_every"))]
    config = build_config("zhou2023", "thumos14", sets=[*sets, "log_every=4", "checkpoint_every=6"], iterations=15)
    train_seed(data, config, 1, tmp_path / "straight", progress=False)

    class Killed(BaseException):
        pass

    original = PlainObjective.step

    def step(self, batch, it):
        if it == 13:
            raise Killed
        return original(self, batch, it)

    with monkeypatch.context() as patch:
        patch.setattr(PlainObjective, "step", step)
        with pytest.raises(Killed):
            train_seed(data, config, 1, tmp_path / "killed", progress=False)
    saved = torch.load(tmp_path / "killed" / "resume.pt", weights_only=True)
    assert saved["iteration"] == 12 and saved["sampler"]["latest"] is not None
    assert saved["sampler"]["previous"] is not None and saved["modules"]["base"]["memory_scores"].abs().sum() > 0
    result = train_seed(data, config, 1, tmp_path / "killed", progress=False)
    assert result["resumed_after_iteration"] == 12
    a, b = (
        load_file(tmp_path / "straight" / "checkpoint.safetensors"),
        load_file(tmp_path / "killed" / "checkpoint.safetensors"),
    )
    for key in a:
        assert torch.equal(a[key], b[key]), key
