"""Behaviour of the MLLM4WTAL plug-ins (KSM, CSR, DPID, localization head) on toy inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.mllm4wtal_fakes import CompleteItem, FakeTextPriors, TinyBase, toy_batches, toy_train_set
from helpers.training_configs import HEAD_FROM_THE_START, SMALL_BRANCHES, mllm4wtal_objective, plugin_config

from wtal_common.errors import ConfigError
from wtal_training.config import build_config
from wtal_training.mllm4wtal import MLLM4WTALObjective, resolve_settings
from wtal_training.mllm4wtal.common import masked_topk_mean
from wtal_training.mllm4wtal.loc_head import diou_loss_1d
from wtal_training.mllm4wtal.pseudo_labels import PseudoInstances, instance_targets
from wtal_training.mllm4wtal.text_inputs import TextPriorError, complete_tokens, key_query_tokens

torch.set_num_threads(1)
SMALL = {**SMALL_BRANCHES, **HEAD_FROM_THE_START}


def make(modules=("ksm", "csr"), seed=0, **overrides):
    """The objective on TinyBase with fake text priors and a toy training set (the head's
    pseudo-labels come from it)."""
    torch.manual_seed(seed)
    tp = FakeTextPriors()
    base = TinyBase(16, len(tp.classes))
    train_config = build_config("delu", "thumos14", iterations=48, modules=list(modules))
    data = toy_train_set(tp.classes)
    return mllm4wtal_objective(base, tp, modules, dict(SMALL, **overrides), [], train_config, data), tp


def test_shapes_of_branches_and_inference_outputs():
    obj, tp = make()
    batch = toy_batches(n=1)[0]
    rng = np.random.default_rng(0)
    out = obj.base(batch.features, batch.mask)
    keys = key_query_tokens(tp, batch.video_ids, batch.labels, rng)
    res = obj.branches["ksm"](out.embeddings, batch.mask, keys.ids, keys.padding, out.attention)
    assert res["similarity"].shape == (6, 24, 4) and res["attention"].shape == (6, 24)
    words = complete_tokens(tp, batch.video_ids, batch.labels, rng)
    rec = obj.branches["csr"](batch.features, batch.mask, words.ids, words.padding)
    assert rec["logits"].shape == (6, words.ids.shape[1], len(tp.vocab))
    assert rec["attention"].shape == (6, 24)
    assert torch.all(rec["attention"][0, -5:] == 0)  # padded snippets carry no attention
    inf = obj.inference_model().eval()
    with torch.no_grad():
        o = inf(batch.features, batch.mask)
    assert o.extras["loc_scores"].shape == (6, 24, 3) and o.extras["loc_offsets"].shape == (6, 24, 2)
    assert float(o.extras["loc_scores"].min()) >= 0 and float(o.extras["loc_scores"].max()) <= 1
    assert float(o.extras["loc_offsets"].min()) >= 0


def test_masking_really_applied_and_unmasked_input_rejected():
    tp = FakeTextPriors()
    batch = toy_batches(n=1)[0]
    words = complete_tokens(tp, batch.video_ids, batch.labels, np.random.default_rng(1))
    targeted = words.targets != -100
    assert targeted.any()
    assert torch.all(words.ids[targeted] == tp.mask_id)  # every reconstructed word is hidden in the input
    assert torch.all(words.targets[targeted] != tp.mask_id)
    leaky = CompleteItem(np.array([4, 9, 5]), np.array([4, 9, 5]), np.array([1]))  # not masked
    tp.complete = lambda vid, cls: [leaky]
    with pytest.raises(TextPriorError, match="really be masked"):
        complete_tokens(tp, batch.video_ids, batch.labels, np.random.default_rng(1))


def test_stop_gradient_isolates_the_phases():
    obj, _ = make()
    batch = toy_batches(n=1)[0]
    rng = np.random.default_rng(0)
    targets = obj.targets(batch, with_rec=True)
    assert not any(t.requires_grad for t in (targets.a_ksm, targets.a_csr))
    obj._match_step(batch, 1, rng, targets)  # the head has a loss at iteration 1 (no warm-up here)
    assert all(p.grad is None for p in obj.branches["csr"].parameters())  # sg(A_CSR): match phase never reaches CSR
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.base.parameters())
    for m in (obj.base, obj.branches["ksm"], obj.head):
        m.zero_grad(set_to_none=True)
    obj._rec_step(batch, rng)  # computes sg(A_KSM) itself
    assert all(p.grad is None for m in (obj.base, obj.branches["ksm"], obj.head) for p in m.parameters())
    assert obj.branches["csr"].attention.net[0].weight.grad.abs().sum() > 0  # the distillation reaches A_CSR


@pytest.mark.parametrize(
    "schedule,period,expected",
    [
        ("both", 1, ["match", "rec"] * 5),
        ("alternate", 1, ["match", "rec", "match", "rec", "match"]),
        ("alternate", 2, ["match", "match", "rec", "rec", "match"]),
    ],
)
def test_phases_follow_the_schedule_from_the_engines_first_iteration(schedule, period, expected):
    """The engine counts iterations from 1 (a fresh run has done = 0: range(done + 1, iterations + 1));
    the first block must be a full match block, not a shortened one or a rec phase."""
    import inspect

    from wtal_training import training

    assert "range(run.done + 1, config.optimiser.iterations + 1)" in inspect.getsource(training.run_training_loop)
    obj, _ = make(phase_schedule=schedule, phase_period=period)
    calls = []
    obj._match_step = lambda b, it, rng, targets: calls.append("match") or {}
    obj._rec_step = lambda b, rng, targets: calls.append("rec") or {}
    batch = toy_batches(n=1)[0]
    for it in range(1, 6):
        obj.step(batch, it)
    assert calls == expected


@pytest.mark.parametrize("modules", [["loc"], ["ksm"], ["csr"], ["ksm", "csr"]])
def test_any_module_subset_trains(modules):
    obj, _ = make(modules)
    logs = obj.step(toy_batches(n=1)[0], 1)
    assert ("ksm_loss" in logs) == ("ksm" in modules)
    assert ("csr_loss" in logs) == ("csr" in modules)
    assert "loc_loss" in logs and all(np.isfinite(float(v)) for v in logs.values())


def test_losses_decrease_on_a_tiny_set():
    obj, _ = make()
    batches = toy_batches(n=4)
    history = [obj.step(batches[it % 4], it) for it in range(1, 49)]
    for key in ("base_loss", "ksm_loss", "csr_loss", "loc_loss"):
        first = np.mean([float(h[key]) for h in history[:8]])
        last = np.mean([float(h[key]) for h in history[-8:]])
        assert last < first, (key, first, last)


def test_training_is_deterministic_on_cpu():
    runs = []
    for _ in range(2):
        obj, _ = make(seed=3)
        batches = toy_batches(n=2)
        logs = [{k: float(v) for k, v in obj.step(batches[it % 2], it).items()} for it in range(3)]
        runs.append((logs, {k: v.clone() for k, v in obj.inference_model().state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_inference_graph_excludes_text_branches():
    obj, _ = make()

    def boom(*a, **k):
        raise AssertionError("text branch called at inference")

    obj.branches["ksm"].forward = boom
    obj.branches["csr"].forward = boom
    obj.branches["ksm"].queries = boom
    model = obj.inference_model().eval()
    with torch.no_grad():
        out = model(toy_batches(n=1)[0].features)
    assert "loc_scores" in out.extras
    assert not any(k.startswith(("ksm", "csr")) for k in model.state_dict())
    assert {n for n, _ in model.named_children()} == {"base", "head"}


def test_instance_targets_classes_and_native_offsets():
    """Snippet t is inside [start, end] when its centre t + 0.5 is; offsets are the distances
    from that centre, in native snippets; two classes overlapping: the shorter instance's."""
    instances = PseudoInstances(np.array([1.0, 5.0, 6.0]), np.array([4.0, 9.0, 8.0]), np.array([1, 0, 1]))
    classes, offsets, positive = instance_targets(instances, 10, 2)
    assert positive.tolist() == [False, True, True, True, False, True, True, True, True, False]
    assert classes[:, 1].tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    assert classes[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert offsets[2].tolist() == [1.5, 1.5]  # centre 2.5 in [1, 4]
    assert offsets[6].tolist() == [0.5, 1.5]  # centre 6.5: in [5, 9] and in the shorter [6, 8]
    assert offsets[8].tolist() == [3.5, 0.5]  # centre 8.5: only in [5, 9]
    assert offsets[0].tolist() == [0.0, 0.0]


def test_diou_and_topk_helpers():
    pred = torch.tensor([[1.0, 2.0], [1.0, 1.0]])
    assert torch.allclose(diou_loss_1d(pred, pred), torch.zeros(2), atol=1e-6)
    assert float(diou_loss_1d(torch.tensor([[0.5, 0.5]]), torch.tensor([[3.0, 3.0]]))[0]) > 0.5
    scores = torch.arange(16.0).view(1, 16, 1)
    mask = torch.ones(1, 16, dtype=torch.bool)
    mask[0, 12:] = False  # 12 real snippets -> k = 12 // 4 = 3 -> mean of 11, 10, 9
    assert float(masked_topk_mean(scores, mask, 4)[0, 0]) == pytest.approx(10.0)


def test_engine_level_keys_map_onto_the_plugin_config():
    """The section's nulls are the run's values: base lr, weight decay, base clip, k."""
    cfg = resolve_settings(plugin_config(["csr"], {"lambda1": 2.0}, sets=["lr=5e-5", "k=7", "weight_decay=0.01"]))
    assert cfg["base_lr"] == 5e-5 and cfg["lr"] == 5e-4 and cfg["k_divisor"] == 7 and cfg["weight_decay"] == 0.01
    assert cfg["lambda1"] == 2.0 and cfg["lambda2"] == 1.5 and cfg["mu1"] == 1.0 and cfg["modules"] == ["csr"]
    assert resolve_settings(plugin_config(["csr"], {"k_divisor": 3, "base_lr": 1e-2}))["k_divisor"] == 3
    obj, _ = make()
    lrs = [g["lr"] for g in obj.optimizers()["match"].param_groups]
    assert lrs == [5e-5, 1e-3, 1e-3] and set(obj.optimizers()) == {"match", "rec"}


def test_bad_config_fields_are_named():
    with pytest.raises(ConfigError, match="modules"):
        make(["ksm", "bogus"])
    with pytest.raises(ConfigError, match="phase_schedule"):
        make(phase_schedule="sometimes")
    with pytest.raises(ConfigError, match="unknown"):
        make(lamda1=1.0)
    with pytest.raises(ConfigError, match="text priors"):
        mllm4wtal_objective(TinyBase(16, 3), None, ["ksm"])


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_plugs_into_the_registered_base_methods(method):
    from wtal_training.models import BASE_METHODS

    torch.manual_seed(0)
    tp = FakeTextPriors()
    base = BASE_METHODS[method](16, len(tp.classes), max_seqlen=24)
    obj = mllm4wtal_objective(base, tp, ["ksm", "csr"], SMALL)
    batch = toy_batches(n=1)[0]
    for label_row in range(6):  # the co-activity loss wants similar pairs first
        batch.labels[label_row] = 0
        batch.labels[label_row, label_row // 2] = 1
    for it in range(2):
        logs = obj.step(batch, it)
    assert np.isfinite(float(logs["match_loss"])) and np.isfinite(float(logs["rec_loss"]))
    with torch.no_grad():
        out = obj.inference_model().eval()(batch.features, batch.mask)
    assert out.extras["loc_offsets"].shape == (6, 24, 2)


def test_fake_priors_mirror_the_real_text_priors_interface():
    from prior_generation.text_priors import load as real

    for name in ("key_tokens", "key_bank", "class_name_tokens", "complete", "template_complete"):
        assert callable(getattr(real.TextPriors, name)) and callable(getattr(FakeTextPriors, name))
    assert (real.TextPriors.pad_id, real.TextPriors.mask_id) != (None, None)
    assert {f for f in real.CompleteItem.__dataclass_fields__} >= {"input_ids", "target_ids", "mask_positions"}


def test_engine_config_object_and_checkpoint_round_trip():
    cfg = plugin_config(["ksm", "csr", "dpid", "loc"], SMALL)
    assert resolve_settings(cfg)["modules"] == ["ksm", "csr"] and resolve_settings(cfg)["loc_head"]
    obj, _ = make()
    state = obj.inference_model().state_dict()
    rebuilt = MLLM4WTALObjective.build_inference_model(cfg, TinyBase(16, 3))
    rebuilt.load_state_dict(state)  # strict: same keys and shapes as the trained inference model


def test_base_method_is_clipped_as_in_its_baseline_run():
    """Branch clipping must not touch the base method: "+modules" differs only in the modules."""
    cfg = resolve_settings(plugin_config(["ksm"], {"grad_clip": 1e-9}, sets=["grad_clip=0"]))
    assert cfg["base_grad_clip"] == 0.0 and cfg["grad_clip"] == 1e-9
    torch.manual_seed(0)
    tp = FakeTextPriors()
    batch = toy_batches(n=1)[0]
    clipped = mllm4wtal_objective(TinyBase(batch.features.shape[-1], len(tp.classes)), tp, ["ksm"], {"grad_clip": 1e-9})
    torch.manual_seed(0)
    free = mllm4wtal_objective(TinyBase(batch.features.shape[-1], len(tp.classes)), tp, ["ksm"], {"grad_clip": 0.0})
    free.base.load_state_dict(clipped.base.state_dict())
    for objective in (clipped, free):
        torch.manual_seed(1)  # same dropout masks in both steps
        objective.step(batch, 1)
    for a, b in zip(clipped.base.parameters(), free.base.parameters()):
        torch.testing.assert_close(a, b)


def test_non_finite_loss_reaches_the_engine_check():
    """The engine stops on logs["loss"]; a NaN batch must show up there."""
    obj, _ = make()
    batch = toy_batches(n=1)[0]
    batch.features = batch.features * float("nan")
    logs = obj.step(batch, 1)
    assert not torch.isfinite(torch.as_tensor(logs["loss"]))
