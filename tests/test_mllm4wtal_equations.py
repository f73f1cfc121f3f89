"""The paper's equations pinned by hand-computed values on tiny tensors (eqs. 10, 14-15, 17-20),
and the targets of the distillation taken from the model without dropout."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from helpers.mllm4wtal_fakes import FakeTextPriors, TinyBase, toy_batches, toy_train_set
from helpers.training_configs import SMALL_BRANCHES, mllm4wtal_objective
from torch import nn

from wtal_training.config import build_config
from wtal_training.mllm4wtal import objective as objective_module
from wtal_training.mllm4wtal import resolve_settings
from wtal_training.mllm4wtal.common import masked_mse
from wtal_training.mllm4wtal.csr import CompleteSemanticReconstruction
from wtal_training.mllm4wtal.ksm import KeySemanticMatching
from wtal_training.mllm4wtal.text_inputs import complete_tokens, key_query_tokens

torch.set_num_threads(1)
SMALL = SMALL_BRANCHES


def _lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def _pair_batch():
    """A toy batch whose first 6 videos are 3 same-class pairs (what CO2/DELU's loss expects)."""
    batch = toy_batches(n=1)[0]
    for row in range(6):
        batch.labels[row] = 0
        batch.labels[row, row // 2] = 1
    return batch


# -- defect 1: targets and pseudo-labels without dropout -----------------------------------------
def _delu_objective(modules=("ksm", "csr"), **overrides):
    from wtal_training.models import BASE_METHODS

    torch.manual_seed(0)
    tp = FakeTextPriors()
    base = BASE_METHODS["delu"](16, len(tp.classes), max_seqlen=24, dropout_ratio=0.9)
    return mllm4wtal_objective(base, tp, modules, dict(SMALL, **overrides))


def test_distillation_targets_are_those_of_the_eval_mode_model(monkeypatch):
    obj = _delu_objective()
    batch = _pair_batch()
    ref_base, ref_csr = copy.deepcopy(obj.base).eval(), copy.deepcopy(obj.branches["csr"]).eval()
    with torch.no_grad():
        ref = ref_base(batch.features, batch.mask)
        ref_a_csr = ref_csr.attention(batch.features, batch.mask)
    seen: list[torch.Tensor] = []
    real_mse = objective_module.masked_mse

    def spy_mse(a, b, mask):
        seen.append(b.detach().clone())
        return real_mse(a, b, mask)

    monkeypatch.setattr(objective_module, "masked_mse", spy_mse)
    obj.step(batch, 1)
    match_target, rec_target = seen
    torch.testing.assert_close(match_target, ref_a_csr)  # psi(A_CSR), eq. 19
    torch.testing.assert_close(rec_target, ref.attention)  # psi(A_KSM), eq. 20
    # the gradient side keeps dropout: every module is back in train mode
    assert all(m.training for m in obj.modules().values())


# -- eq. 10 ---------------------------------------------------------------------------------
def test_ksm_loss_eq10_hand_value():
    ksm = KeySemanticMatching(np.zeros((5, 4), np.float32), 0, embedding_dim=8, num_classes=1, k_divisor=2)
    # T = 2 snippets, C + 1 = 2 columns (class, background); k = 2 // 2 = 1
    similarity = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])
    attention = torch.tensor([[1.0, 0.5]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    labels = torch.tensor([[1.0]])
    # s = (2, 1); s_hat from A * M = [[2, 0], [0, 0.5]] -> (2, 0.5)
    # y = (1, 1) / 2 (background 1, normalised); y_hat = (1, 0) (background 0)
    log_p = (2 - _lse(2, 1), 1 - _lse(2, 1))
    log_p_hat = (2 - _lse(2, 0.5), 0.5 - _lse(2, 0.5))
    expect = -(0.5 * log_p[0] + 0.5 * log_p[1]) - log_p_hat[0]
    assert ksm.loss(similarity, attention, mask, labels).item() == pytest.approx(expect, rel=1e-6)


# -- eqs. 14-15 -----------------------------------------------------------------------------
class _FixedAttention(nn.Module):
    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.values = values

    def forward(self, features, mask):
        return self.values.expand(features.shape[0], -1) * mask.to(features.dtype)


def test_csr_snippets_with_near_zero_attention_do_not_change_the_word_logits():
    torch.manual_seed(0)
    tp = FakeTextPriors()
    csr = CompleteSemanticReconstruction(
        tp.word_vectors, tp.pad_id, tp.mask_id, 16, dim=16, heads=2, layers=2, ffn=32
    ).eval()
    csr.attention = _FixedAttention(torch.tensor([[1.0, 1e-7, 1.0, 1.0, 1e-7, 1.0]]))
    features = torch.randn(1, 6, 16)
    mask = torch.ones(1, 6, dtype=torch.bool)
    words = torch.tensor([[4, 3, 8, 3, 5]])
    padding = torch.zeros_like(words, dtype=torch.bool)
    with torch.no_grad():
        before = csr(features, mask, words, padding)["logits"]
        low = features.clone()
        low[0, [1, 4]] += 10 * torch.randn(2, 16)  # snippets with A ~ 0
        after_low = csr(low, mask, words, padding)["logits"]
        high = features.clone()
        high[0, 2] += 10 * torch.randn(16)  # a snippet with A = 1
        after_high = csr(high, mask, words, padding)["logits"]
    torch.testing.assert_close(after_low, before, atol=1e-4, rtol=0)
    assert (after_high - before).abs().max() > 1e-2


# -- eq. 17 ---------------------------------------------------------------------------------
def test_csr_loss_eq17_sums_over_the_masked_words_of_a_sentence():
    tp = FakeTextPriors()
    csr = CompleteSemanticReconstruction(tp.word_vectors, tp.pad_id, tp.mask_id, 16, dim=16, heads=2, layers=1, ffn=32)
    logits = torch.zeros(3, 3, 2)
    logits[0, 0] = torch.tensor([0.0, 1.0])
    targets = torch.tensor([[1, -100, 0], [-100, 1, -100], [-100, -100, -100]])  # sentence 3: nothing masked
    nll_a = -(1.0 - _lse(0.0, 1.0))  # word 1 under logits (0, 1)
    nll_u = math.log(2.0)  # uniform logits
    sentence_sums = [nll_a + nll_u, nll_u]
    assert csr.loss(logits, targets).item() == pytest.approx(sum(sentence_sums) / 2, rel=1e-6)
    assert csr.loss(logits, targets, "word_mean").item() == pytest.approx((nll_a + 2 * nll_u) / 3, rel=1e-6)


# -- eqs. 19-20 -----------------------------------------------------------------------------
def test_masked_mse_hand_value():
    a = torch.tensor([[0.2, 0.8, 0.3]])
    b = torch.tensor([[0.0, 1.0, 0.9]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mse(a, b, mask).item() == pytest.approx((0.04 + 0.04) / 2)


@pytest.mark.parametrize("passes", ["single", "contrastive"])
def test_match_and_rec_losses_eqs_19_20_with_distinct_weights(passes):
    torch.manual_seed(0)
    tp = FakeTextPriors()
    base = TinyBase(16, len(tp.classes))
    head = {"loc_warmup": 0.0, "loc_ramp": 0.0, "loc_window": 16, "loc_batch_size": 4}
    plugins = dict(SMALL, lambda1=2.0, lambda2=0.5, mu1=0.25, csr_passes=passes, **head)
    train_config = build_config("delu", "thumos14", iterations=10, modules=["ksm", "csr"])
    obj = mllm4wtal_objective(base, tp, ["ksm", "csr"], plugins, [], train_config, toy_train_set(tp.classes))
    obj.branches["csr"].attention.net[2].p = 0.0  # A_CSR without dropout on both sides, to compute it here
    batch = toy_batches(n=1)[0]
    with torch.no_grad():
        a_base = copy.deepcopy(obj.base).eval()(batch.features, batch.mask).attention
        a_csr = copy.deepcopy(obj.branches["csr"]).eval().attention(batch.features, batch.mask)
    expect_distill = masked_mse(a_base, a_csr, batch.mask).item()
    logs = {k: float(v) for k, v in obj.step(batch, 1).items()}
    # TinyBase has no dropout: the train-side A_KSM is the eval one, and the match phase
    # does not touch CSR, so both distillation terms are MSE(a_base, a_csr) here
    assert logs["distill_match"] == pytest.approx(expect_distill, rel=1e-5)
    assert logs["distill_rec"] == pytest.approx(expect_distill, rel=1e-5)
    assert logs["loc_weight"] == 0.25  # mu1, no ramp configured
    l_loc = logs["loc_focal"] + logs["loc_diou"] + logs["loc_mil"]  # eq. 18
    match = logs["base_loss"] + logs["ksm_loss"] + 2.0 * logs["distill_match"] + 0.25 * l_loc
    assert logs["match_loss"] == pytest.approx(match, rel=1e-5)
    if passes == "single":  # eq. 20 as printed
        assert logs["rec_loss"] == pytest.approx(logs["csr_loss"] + 0.5 * logs["distill_rec"], rel=1e-5)
    else:  # reconstruction (attended + whole) and selection (two hinges + lambda2 * MSE)
        rec = logs["csr_loss"] + logs["csr_loss_whole"] + logs["csr_hinge_whole"] + logs["csr_hinge_inverse"]
        assert logs["rec_loss"] == pytest.approx(rec + 0.5 * logs["distill_rec"], rel=1e-5)


# -- which text a batch gets ------------------------------------------------------------------
class _SparsePriors(FakeTextPriors):
    """Class "swim" has no key description anywhere: it falls back to its name."""

    def key_bank(self, cls):
        return [] if cls == "swim" else super().key_bank(cls)

    def key_tokens(self, video_id, cls):
        return [] if cls == "swim" else super().key_tokens(video_id, cls)


def test_key_query_tokens_returns_one_padded_sequence_per_class_in_class_order():
    tp = _SparsePriors()
    labels = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]])  # jump, jump, throw; swim absent
    vids = ["a", "b", "c"]
    out = key_query_tokens(tp, vids, labels, np.random.default_rng(0))
    assert out.ids.shape == (3, 5) and out.padding.shape == (3, 5)
    owners_jump = [tp.key_tokens(v, "jump")[0].tolist() for v in ("a", "b")]
    assert out.ids[0].tolist() in owners_jump  # a description of one of the batch's jump videos
    name = tp.class_name_tokens("swim").tolist()
    assert out.ids[1].tolist() == name + [tp.pad_id] * 4 and out.padding[1].tolist() == [False] + [True] * 4
    assert out.ids[2].tolist() == tp.key_tokens("c", "throw")[0].tolist()
    assert not out.padding[[0, 2]].any()
    # an absent class with a bank draws from the bank, not from the batch
    labels_no_throw = torch.tensor([[1.0, 0, 0]])
    out = key_query_tokens(tp, ["a"], labels_no_throw, np.random.default_rng(1))
    assert out.ids[2].tolist() in [s.tolist() for s in tp.key_bank("throw")]


def test_csr_mask_resampled_per_iteration_when_asked():
    tp = FakeTextPriors()
    batch = toy_batches(n=1)[0]
    draws = []
    for it in range(4):
        words = complete_tokens(tp, batch.video_ids, batch.labels, np.random.default_rng([0, it]), resample_mask=True)
        masked = words.ids == tp.mask_id
        assert torch.equal(masked, words.targets != -100)
        assert masked.sum(1).tolist() == [round(8 / 3)] * 6  # every fake sentence has 8 words
        draws.append(masked)
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    fixed = complete_tokens(tp, batch.video_ids, batch.labels, np.random.default_rng(0)).ids == tp.mask_id
    assert all(torch.nonzero(row).flatten().tolist() == [2, 5] for row in fixed)  # the stored mask


def test_activitynet_branch_lr_is_the_papers_unless_set():
    def branch_lr(family, *sets):
        return resolve_settings(build_config("delu", family, sets=list(sets), modules=["ksm"]))["lr"]

    assert branch_lr("thumos14") == 5e-4
    assert branch_lr("activitynet", "lr=1e-3") == 3e-5  # the base lr is not the branches'
    assert branch_lr("activitynet", "mllm4wtal.lr=1e-4") == 1e-4
