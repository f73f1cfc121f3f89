"""DDG-Net and UM: loss terms by hand, graph and magnitude masking, the test-time hooks,
batched vs one-by-one inference, and training through the engine with and without the
MLLM4WTAL plug-ins (tiny shapes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.mllm4wtal_fakes import FakeTextPriors
from helpers.toy_data import make_toy_dataset
from helpers.training_configs import TINY_BRANCHES, fast_sets

from wtal_training import losses
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.inference import infer
from wtal_training.models import BASE_METHODS, build_base_method
from wtal_training.models.ddgnet import DDGNet, similarity_graph
from wtal_training.models.um import normalised_magnitude, um_losses
from wtal_training.models.um_postprocess import hard_nms, upsample
from wtal_training.postprocess import predictions_from_outputs
from wtal_training.training import train_seed

torch.set_num_threads(1)
FAST = fast_sets(max_seqlen=48, log_every=2, checkpoint_every=2, timelines=0, dropout_ratio=0.7)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=32, signal=3.0, length_range=(30, 70))


# -- DDG-Net ---------------------------------------------------------------------------------
def test_complementary_loss_hand_value():
    cas = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))  # classes 0, 1, background
    labels = torch.tensor([[1.0, 0.0]])  # class 1 absent: -log(1 - 0.25)
    assert math.isclose(losses.complementary_loss(cas, labels).item(), math.log(4 / 3), rel_tol=1e-6)


def test_feature_consistency_loss_hand_value():
    a = torch.tensor([[0.8, 0.6, 0.2]])
    action = torch.tensor([[True, True, False]])
    background = torch.tensor([[False, False, True]])
    d_rgb, d_flow = torch.tensor([[1.0, 3.0, 5.0]]), torch.zeros(1, 3)
    w1, w2 = math.exp(-(1 / 0.8 - 1) / 0.5), math.exp(-(1 / 0.6 - 1) / 0.5)
    act = (w1 * 1 + w2 * 3) / (w1 + w2)
    expect = ((act + 5.0) + 0.0) / 2  # background: one snippet, its distance; flow: 0; modalities averaged
    got = losses.feature_consistency_loss((d_rgb, d_flow), a, action, background, 0.5).item()
    assert math.isclose(got, expect, rel_tol=1e-6)


def test_similarity_graph_threshold_top_k_and_padding():
    x = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.1, 1.0, 1.0]]).unsqueeze(0)  # (1, D=2, T=4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    full = similarity_graph(x, x, mask, 0.8, 2.0)  # k = 2 rows per column
    cos01 = 1 / math.sqrt(1.01)
    expect = torch.tensor([[1, cos01, 0, 0], [cos01, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert torch.allclose(full[0], expect, atol=1e-6)  # 0.707 similarities are below 0.8
    top1 = similarity_graph(x, x, mask, 0.8, 4.0)[0]  # k = 1: each column keeps its best row only
    assert torch.allclose(top1, torch.eye(4), atol=1e-6)
    # 4 padded snippets copying snippet 0: never linked, and k stays 4 // 4 = 1 (not 8 // 4)
    padded = torch.cat([x, x[:, :, :1].expand(1, 2, 4)], dim=2)
    pmask = torch.tensor([[True] * 4 + [False] * 4])
    got = similarity_graph(padded, padded, pmask, 0.8, 4.0)[0]
    assert torch.allclose(got[:4, :4], top1) and got[4:].abs().sum() == 0 and got[:, 4:].abs().sum() == 0


def _public_graph(rgb: torch.Tensor, flow: torch.Tensor, threshold: float, top_k_rat: float) -> torch.Tensor:
    """The public DDG-Net graph rule on an unpadded (B, D, T) batch, stated with its torch ops:
    mean cosine similarity, entries below the threshold set to 0, then the T - k smallest
    of each column (zeros included; k = T // top_k_rat) set to 0 by topk(largest=False)."""
    norm = [torch.nn.functional.normalize(x, dim=1) for x in (rgb, flow)]
    sim = (torch.matmul(norm[0].transpose(1, 2), norm[0]) + torch.matmul(norm[1].transpose(1, 2), norm[1])) / 2
    sim[sim < threshold] = 0
    t = sim.shape[1]
    k = int(t // top_k_rat)
    smallest = torch.topk(sim, t - k, dim=1, largest=False, sorted=False)[1]
    return sim.scatter(1, smallest, 0)


def _doubled_video(length: int, dim: int, seed: int) -> torch.Tensor:
    """(1, 2 * length, dim) features of a slowly drifting video with every snippet repeated
    (as random-perturb sampling repeats the snippets of short videos): similarities come in
    exactly equal pairs, and an odd k = T // 10 splits a pair at the top-k boundary."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(1, 1, dim, generator=g) + 0.3 * torch.randn(1, length, dim, generator=g).cumsum(1)
    return x.repeat_interleave(2, dim=1)


def test_similarity_graph_breaks_top_k_ties_as_the_public_code():
    short, long = _doubled_video(16, 16, 0), _doubled_video(37, 16, 1)  # T = 32, 74: k = 3, 7
    for x in (short, long):
        rgb, flow = x.transpose(1, 2)[:, :8], x.transpose(1, 2)[:, 8:]
        expect = _public_graph(rgb, flow, 0.8, 10.0)
        # the premise: some column has a positive tie across its k-th / (k+1)-th largest entries
        k = x.shape[1] // 10
        thresholded = _public_graph(rgb, flow, 0.8, 1.0)  # k = T: nothing pruned
        ranked = thresholded.sort(dim=1, descending=True).values
        assert ((ranked[:, k - 1] == ranked[:, k]) & (ranked[:, k] > 0)).any()
        got = similarity_graph(rgb, flow, torch.ones(1, x.shape[1], dtype=torch.bool), 0.8, 10.0)
        assert torch.equal(got, expect)
    # padded together, each video keeps its own T, k and ties: exactly its graph alone
    both = torch.zeros(2, 74, 16)
    both[0, :32], both[1] = short[0], long[0]
    mask = torch.arange(74).unsqueeze(0) < torch.tensor([[32], [74]])
    feats = both.transpose(1, 2)
    got = similarity_graph(feats[:, :8], feats[:, 8:], mask, 0.8, 10.0)
    assert torch.equal(got[0, :32, :32], _public_graph(feats[:1, :8, :32], feats[:1, 8:, :32], 0.8, 10.0)[0])
    assert got[0, 32:].abs().sum() == 0 and got[0, :, 32:].abs().sum() == 0
    assert torch.equal(got[1], _public_graph(feats[1:, :8], feats[1:, 8:], 0.8, 10.0)[0])


def test_ddgnet_cas_with_repeated_snippets_equals_the_public_graph_rule(monkeypatch):
    # CAS of the whole network with our graph vs with the public rule (_public_graph) patched
    # in: exactly equal (the previous rule, keeping each column's k largest, changed it by up to 0.59).
    torch.manual_seed(0)
    model = build_base_method(build_config("ddgnet", "thumos14"), 16, 3).eval()
    x = _doubled_video(16, 16, 0)
    mask = torch.ones(1, 32, dtype=torch.bool)
    with torch.no_grad():
        ours = model(x, mask)
        monkeypatch.setattr(
            "wtal_training.models.ddgnet.similarity_graph",
            lambda rgb, flow, mask, threshold, rat: _public_graph(rgb, flow, threshold, rat),
        )
        public = model(x, mask)
    assert ours.extras["ddg_action"].any() and ours.extras["ddg_background"].any()  # the graph is used
    assert torch.equal(ours.cas, public.cas) and torch.equal(ours.attention, public.attention)


def test_ddgnet_forward_shapes_and_padding_mask():
    torch.manual_seed(0)
    model = build_base_method(build_config("ddgnet", "thumos14"), 16, 3).eval()
    x = torch.randn(1, 12, 16)
    alone = model(x, torch.ones(1, 12, dtype=torch.bool))
    assert alone.cas.shape == (1, 12, 4) and alone.attention.shape == (1, 12) and alone.embeddings.shape == (1, 12, 16)
    padded = torch.cat([x, torch.randn(1, 30, 16) * 5], dim=1)
    out = model(padded, torch.tensor([[True] * 12 + [False] * 30]))
    assert torch.allclose(out.cas[:, :12], alone.cas, atol=1e-5)
    assert torch.allclose(out.attention[:, :12], alone.attention, atol=1e-6)


def test_ddgnet_loss_adds_the_two_terms_with_their_weights():
    torch.manual_seed(0)
    config = build_config("ddgnet", "thumos14")
    own, test = config.own, config.test
    assert (own.alpha5, own.alpha6, test.num_thresholds, test.min_proposal_length) == (3.2, 1.0, 10, 0.0)
    anet = build_config("ddgnet", "activitynet")
    assert (anet.own.alpha5, anet.own.alpha6, anet.own.edl_form, anet.model.pool_t) == (1.7, 0.5, "relu_mse", 5)
    from wtal_training.models.base import Batch

    model = build_base_method(config, 16, 3)
    x = torch.randn(6, 20, 16)
    labels = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
    batch = Batch(x, torch.ones(6, 20, dtype=torch.bool), labels, list("abcdef"))
    torch.manual_seed(1)
    total, parts = model.loss(model(x, batch.mask), batch, 10)
    torch.manual_seed(1)
    out = model(x, batch.mask)
    expect_cl = config.own.alpha6 * losses.complementary_loss(out.cas, labels)
    assert torch.allclose(parts["complementary"], expect_cl)
    assert set(parts) >= {"mil", "edl", "uct_guide", "feature_consistency", "complementary"}
    assert torch.allclose(total, sum(parts.values()), atol=1e-5)


# -- UM --------------------------------------------------------------------------------------
def test_um_losses_hand_values():
    feats = torch.tensor([[[3.0], [1.0], [2.0], [0.0]]])  # magnitudes 3, 1, 2, 0
    logits = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    labels = torch.tensor([[1.0, 0.0]])
    parts = um_losses(logits, feats, labels, torch.ones(1, 4), r_act=2, r_bkg=4, margin=4.0)
    # action: top-2 magnitudes (3, 2): ||mean|| 2.5; background: the smallest (0); (4 - 2.5 + 0)^2
    assert math.isclose(parts["um"].item(), 2.25, rel_tol=1e-6)
    # class scores: softmax(mean of top-2 per class) = softmax(1.5, 0.5); BCE against (1, 0)
    p = 1 / (1 + math.exp(-1))
    assert math.isclose(parts["cls"].item(), -math.log(p), rel_tol=1e-5)
    # background snippet t3: softmax(0, 1) against the uniform 0.5
    assert math.isclose(parts["be"].item(), -(math.log(1 - p) + math.log(p)) / 2, rel_tol=1e-5)
    # the ranking's dropout mask changes the chosen snippets: drop t0, then (2, 1) are the action ones
    dropped = um_losses(logits, feats, labels, torch.tensor([[0.0, 1, 1, 1]]), 2, 4, 4.0)
    assert math.isclose(dropped["um"].item(), (4 - 1.5) ** 2, rel_tol=1e-6)


def test_um_attention_is_the_normalised_magnitude_and_respects_padding():
    mag = torch.tensor([[3.0, 1.0, 2.0, 0.0, 9.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    att = normalised_magnitude(mag, mask, 2.0, 4.0)  # high = mean(3, 2), low = 0
    assert torch.allclose(att, torch.tensor([[1.0, 0.4, 0.8, 0.0, 0.0]]))


def test_um_forward_contract_mapping():
    torch.manual_seed(0)
    model = build_base_method(build_config("um", "thumos14"), 16, 3).eval()
    x = torch.randn(2, 27, 16)
    out = model(x, torch.ones(2, 27, dtype=torch.bool))
    assert out.cas.shape == (2, 27, 4) and out.extras["class_logits"].shape == (2, 27, 3)
    probs = out.cas.softmax(-1)  # = (a * softmax(class logits), 1 - a)
    a = out.attention
    assert torch.allclose(probs[..., -1], 1 - a, atol=1e-5)
    assert torch.allclose(probs[..., :-1], out.extras["class_logits"].softmax(-1) * a.unsqueeze(-1), atol=1e-5)
    assert model.inference_length(torch.tensor([10, 750, 2000])).tolist() == [10, 750, 750]


def test_um_upsample_and_hard_nms():
    assert np.allclose(upsample(np.array([0.0, 1.0, 3.0]), 2), [0, 0.5, 1, 2, 3, 4])  # last step extrapolated
    kept = hard_nms(np.array([0.0, 1, 10]), np.array([10.0, 11, 12]), np.array([0.9, 0.8, 0.7]), 0.6)
    assert kept[0] == 0.9 and np.isnan(kept[1]) and kept[2] == 0.7  # IoU 9/11 >= 0.6


def test_um_postprocessing_maps_resampled_outputs_back_to_the_video():
    config = build_config("um", "thumos14")
    n, length = 10, 40  # the network saw 10 of 40 snippets
    logits = np.zeros((n, 2))
    logits[4:8, 0] = 5.0
    att = np.zeros(n)
    att[4:8] = 1.0
    gt = {"classes": ["a", "b"], "snippet_seconds": 1.0, "database": {"v": {"duration": 40.0}}}
    out = {"v": {"cas": np.zeros((n, 3)), "attention": att, "class_logits": logits, "video_length": np.asarray(length)}}
    results = predictions_from_outputs(out, gt, config)["results"]["v"]
    best = results[0]
    assert best["label"] == "a"
    # the action covers network steps 4..7 = snippets 16..32 of the video; the linear
    # interpolation ramps over one network step (4 snippets) on each side
    assert 12 <= best["segment"][0] <= 17 and 28 <= best["segment"][1] <= 36  # not 3..8: steps, unmapped
    starts = sorted(r["segment"][0] for r in results)
    assert all(b - a > 0 for a, b in zip(starts, starts[1:])) or len(results) == 1  # hard NMS: no duplicates


# -- both: the engine ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ddgnet", "um"])
def test_batched_inference_equals_single_video(toy, method):
    data = load_data(toy, "cpu")
    config = build_config(method, "thumos14", sets=FAST)  # UM: videos > 48 snippets are resampled
    torch.manual_seed(0)
    model = build_base_method(config, 32, 3).eval()
    batched = infer(model, data.test, max_snippets=10_000)
    single = infer(model, data.test, max_snippets=1)
    assert any("video_length" in v for v in batched.values()) == (method == "um")
    for vid in data.test.video_ids:
        assert set(batched[vid]) == set(single[vid])
        for key in batched[vid]:
            np.testing.assert_allclose(batched[vid][key], single[vid][key], atol=1e-4, err_msg=f"{vid} {key}")


def test_ddgnet_inference_chunks_bound_the_graph_pairs(toy, monkeypatch):
    ddg = build_base_method(build_config("ddgnet", "thumos14", sets=FAST), 32, 3)
    delu = build_base_method(build_config("delu", "thumos14", sets=FAST), 32, 3)
    # THUMOS14's longest test video (2,615 snippets) under the CUDA snippet bound (262,144)
    assert delu.inference_videos_per_chunk(2615, 262_144) == 100
    assert ddg.inference_videos_per_chunk(2615, 262_144) == 2**26 // 2615**2 == 9
    assert ddg.inference_videos_per_chunk(320, 262_144) == 2**26 // 320**2 == 655  # pairs bind before 819
    assert ddg.inference_videos_per_chunk(100, 1_000) == 10  # snippets bind first
    assert ddg.inference_videos_per_chunk(20_000, 262_144) == 1
    # the engine asks the method: a tiny pair budget gives the same outputs in more chunks
    data = load_data(toy, "cpu")
    ddg.eval()
    before = infer(ddg, data.test, max_snippets=10_000)
    sizes = []
    original = DDGNet.inference_videos_per_chunk

    def recorded(self, longest, max_snippets):
        sizes.append(original(self, longest, max_snippets))
        return sizes[-1]

    monkeypatch.setattr(DDGNet, "max_inference_pairs", 30**2)  # toy videos have 30-70 snippets
    monkeypatch.setattr(DDGNet, "inference_videos_per_chunk", recorded)
    after = infer(ddg, data.test, max_snippets=10_000)
    assert sizes == [1] * len(data.test.video_ids)  # one video per forward (one chunk before)
    for vid in data.test.video_ids:
        for key in before[vid]:
            np.testing.assert_allclose(after[vid][key], before[vid][key], atol=1e-4, err_msg=f"{vid} {key}")


@pytest.mark.parametrize("method", ["ddgnet", "um"])
@pytest.mark.parametrize("modules", [[], ["ksm", "csr"]])
def test_trains_and_evaluates_with_and_without_plugins(toy, tmp_path, method, modules):
    data = load_data(toy, "cpu")
    config = build_config(method, "thumos14", sets=FAST, iterations=4, modules=modules)
    priors = None
    if modules:
        config = config.updated({"mllm4wtal": TINY_BRANCHES})
        priors = FakeTextPriors(classes=data.gt["classes"])
    result = train_seed(data, config, 0, tmp_path, text_priors=priors, progress=False)
    assert np.isfinite(result["average_mAP"]["0.1:0.7"])
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[-1]
    preds = json.loads((tmp_path / "predictions.json").read_text())["results"]
    assert set(preds) == set(data.test.video_ids)
    if not modules:  # (an untrained localization head may score every snippet below its threshold)
        assert any(preds.values())
    else:
        assert any(k.startswith("ksm_loss") for k in rows[0].split(","))


def test_workflow_schema_names_every_registered_method():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["training"]["properties"]["method"]["enum"] == list(BASE_METHODS.names())
