"""The optimised MLLM4WTAL step computes what the straightforward one does.

``reference_step`` below is eqs. 19-20 written out the plain way (one eval-mode no-grad
pass for the targets, then match with a train-mode base forward, then rec with a full
CSR forward; one Adam per parameter set; Python-built tokens; for the contrastive CSR,
each loss's gradient taken with ``torch.autograd.grad`` on its own parameters).  Built
without a data set, the objective gives the localization head no loss (its training is
tested in tests/test_localization_head.py).  Whatever the objective
does to save time (shared computations, fused optimizers), N steps of it must leave the
same parameters and give the same losses as N reference steps from the same seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.mllm4wtal_fakes import FakeTextPriors, toy_batches
from helpers.training_configs import SMALL_BRANCHES, mllm4wtal_objective

from wtal_training.mllm4wtal.common import masked_mse
from wtal_training.mllm4wtal.text_inputs import complete_tokens, key_query_tokens
from wtal_training.models import BASE_METHODS

torch.set_num_threads(1)
SMALL = {**SMALL_BRANCHES, "csr_layers": 2, "csr_lr": 2e-3}


class ReferenceTrainer:
    """The objective's modules trained by the plain-way step, with optimizers of its own."""

    def __init__(self, obj) -> None:
        self.obj = obj
        cfg = obj.cfg
        lr, wd = cfg["lr"], cfg["weight_decay"]
        self.opt_base = torch.optim.Adam(obj.base.parameters(), lr=cfg["base_lr"] or lr, weight_decay=wd)
        ksm = obj.branches["ksm"]
        branch = [p for m in (ksm, obj.head) if m is not None for p in m.parameters() if p.requires_grad]
        self.opt_branch = torch.optim.Adam(branch, lr=lr, weight_decay=wd)
        self.opt_csr = torch.optim.Adam(
            [p for p in obj.branches["csr"].parameters() if p.requires_grad], lr=cfg["csr_lr"] or lr, weight_decay=wd
        )
        self.branch = branch

    def step(self, batch, iteration: int) -> dict[str, torch.Tensor]:
        obj, cfg = self.obj, self.obj.cfg
        base, ksm, csr, head, tp = obj.base, obj.branches["ksm"], obj.branches["csr"], obj.head, obj.tp
        f, mask, labels = batch.features, batch.mask, batch.labels
        rng = np.random.default_rng([obj.seed, int(iteration)])
        own = cfg["ksm_attention"] == "own"
        # targets: eval mode (no dropout), no gradient, before any update
        with torch.no_grad():
            for m in (base, ksm, csr):
                m.eval()
            out = base(f, mask)
            t_ksm = ksm.attention(out.embeddings, mask) if own else out.attention
            t_csr = csr.attention(f, mask)
            for m in (base, ksm, csr, head):
                m.train()
        # match (eq. 19)
        out = base(f, mask)
        loss, _ = base.loss(out, batch, iteration)
        keys = key_query_tokens(tp, batch.video_ids, labels, rng, cfg["ksm_text"])
        res = ksm(out.embeddings, mask, keys.ids, keys.padding, out.attention)
        loss = loss + ksm.loss(res["similarity"], res["attention"], mask, labels)
        loss = loss + cfg["lambda1"] * masked_mse(res["attention"], t_csr, mask)
        match_loss = loss
        self.opt_base.zero_grad(set_to_none=True)
        self.opt_branch.zero_grad(set_to_none=True)
        match_loss.backward()
        if cfg["base_grad_clip"]:
            torch.nn.utils.clip_grad_norm_([p for p in base.parameters() if p.grad is not None], cfg["base_grad_clip"])
        if cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_([p for p in self.branch if p.grad is not None], cfg["grad_clip"])
        self.opt_base.step()
        self.opt_branch.step()
        # rec (eq. 20)
        words = complete_tokens(
            tp, batch.video_ids, labels, rng, cfg["csr_text"], resample_mask=cfg["csr_mask"] == "resample"
        )
        contrastive = cfg["csr_passes"] == "contrastive"
        passes = ("attended", "whole", "inverse") if contrastive else ("attended",)
        res = csr(f, mask, words.ids, words.padding, passes=passes)
        l_csr = csr.loss(res["logits"], words.targets, cfg["csr_loss_reduction"])
        distill = masked_mse(res["attention"], t_ksm, mask)
        self.opt_csr.zero_grad(set_to_none=True)
        if contrastive:
            l_whole = csr.loss(res["logits_whole"], words.targets, cfg["csr_loss_reduction"])
            hinges = csr.contrastive_losses(res, words.targets, cfg["csr_margin_whole"], cfg["csr_margin_inverse"])
            selection = hinges["hinge_whole"] + hinges["hinge_inverse"] + cfg["lambda2"] * distill
            own_head = list(csr.attention.parameters())
            head_ids = {id(p) for p in own_head}
            rest = [p for p in csr.parameters() if p.requires_grad and id(p) not in head_ids]
            grads = torch.autograd.grad(l_csr + l_whole, rest, retain_graph=True, allow_unused=True)
            grads += torch.autograd.grad(selection, own_head, allow_unused=True)
            for p, g in zip(rest + own_head, grads):
                p.grad = g
            rec_loss = l_csr + l_whole + selection
        else:
            rec_loss = l_csr + cfg["lambda2"] * distill
            rec_loss.backward()
        if cfg["grad_clip"]:
            torch.nn.utils.clip_grad_norm_([p for p in csr.parameters() if p.grad is not None], cfg["grad_clip"])
        self.opt_csr.step()
        return {"match_loss": match_loss.detach(), "rec_loss": rec_loss.detach()}


def _objective(**overrides):
    torch.manual_seed(0)
    tp = FakeTextPriors()
    base = BASE_METHODS["delu"](16, len(tp.classes), max_seqlen=24)
    return mllm4wtal_objective(base, tp, ["ksm", "csr"], dict(SMALL, **overrides), ["lr=5e-4", "k=7", "grad_clip=0.5"])


def _pair_batches(n: int):
    batches = toy_batches(n=n)
    for batch in batches:  # CO2/DELU's co-activity loss wants similar pairs first
        for row in range(6):
            batch.labels[row] = 0
            batch.labels[row, row // 2] = 1
    return batches


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ksm_attention": "own", "csr_mask": "resample", "csr_loss_reduction": "word_mean", "grad_clip": 1e-3},
        {"csr_passes": "single", "csr_attention_dropout": 0.0},
    ],
    ids=["defaults", "own-attention-resample-clipped", "single-pass-no-attention-dropout"],
)
def test_objective_steps_equal_the_reference_steps(overrides):
    """Same seed, same batches: the same losses each step and the same parameters after 4 steps
    (bitwise on one machine: the same operations in the same order, dropout masks included)."""
    optimised = _objective(**overrides)
    reference = ReferenceTrainer(_objective(**overrides))
    batches = _pair_batches(2)
    runs = []
    for trainer in (optimised, reference):
        torch.manual_seed(7)  # the same dropout masks in both runs
        runs.append([trainer.step(batches[it % 2], it) for it in range(1, 5)])
    for got, want in zip(*runs):
        for key in ("match_loss", "rec_loss"):
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    ref_modules = reference.obj.modules()
    for name, module in optimised.modules().items():
        for (pname, got), want in zip(module.named_parameters(), ref_modules[name].parameters()):
            torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"{name}.{pname}")
    for name, module in optimised.modules().items():  # and training changed them at all
        if name == "head":  # no data set, so no head loss (tests/test_localization_head.py)
            continue
        assert any(
            not torch.equal(p, q)
            for p, q in zip(module.parameters(), _objective(**overrides).modules()[name].parameters())
        )


def test_csr_attention_stem_runs_once_per_iteration_for_targets_and_rec():
    """The eval-mode targets and the rec phase share A_CSR's first conv (it precedes the head's
    dropout): one call per iteration, not two, with the gradient still reaching its weights."""
    obj = _objective()
    first_conv = obj.branches["csr"].attention.net[0]
    calls = []
    first_conv.register_forward_hook(lambda module, args, output: calls.append(torch.is_grad_enabled()))
    obj.step(_pair_batches(1)[0], 1)
    assert calls == [True]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_csr_attention_width_is_a_config_field():
    assert _objective().branches["csr"].attention.net[0].out_channels == 512  # CO2-Net's D/4 at D = 2048
    assert _objective(csr_attention_hidden=8).branches["csr"].attention.net[0].out_channels == 8
