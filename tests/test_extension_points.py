"""The lists "Add a base method" and "Add a plug-in" of docs/architecture.md, followed.

A toy base method and a toy MLLM4WTAL branch are defined and registered here, in the test;
the base method's config sections are added to copies of configs/defaults.yaml and
configs/train_config.schema.yaml (the two files the list names), which the config code is
pointed at.  Both then train and evaluate end to end on a toy data set through the same entry
points as the built-in ones, with no other edit.  A registered module that takes no role is
refused with a message saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers.mllm4wtal_fakes import FakeTextPriors
from helpers.toy_data import make_toy_dataset
from torch import nn
from torch.nn import functional as F

from wtal_common.errors import ConfigError
from wtal_common.logs import close_file_handlers
from wtal_training import config as config_module
from wtal_training import config_schema
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.mllm4wtal.branches import BranchSetup, MatchBranch, MatchStep, MatchTerms
from wtal_training.mllm4wtal.common import masked_topk_mean
from wtal_training.mllm4wtal.plugins import MLLM4WTAL_MODULES
from wtal_training.models.base import BASE_METHODS, BaseMethod, BaseOutput, Batch, register_base_method
from wtal_training.objectives import check_objective_config
from wtal_training.training import train_seed

torch.set_num_threads(1)
FAST = ["max_seqlen=24", "log_every=5", "checkpoint_every=5", "num_timeline_videos=1"]


# -- the toy base method: its own file would be wtal_training/models/toy.py -----------------------
class ToyMethod(BaseMethod):
    """A conv embedding, an attention head and a classifier over C+1 classes; MIL loss."""

    shared_settings = ("model.k",)

    def __init__(self, feature_dim: int, num_classes: int, **hp) -> None:
        super().__init__(feature_dim, num_classes)
        self.hp = hp
        width = int(hp["width"])
        self.embed = nn.Conv1d(feature_dim, width, 3, padding=1)
        self.attend = nn.Conv1d(width, 1, 1)
        self.classify = nn.Conv1d(width, num_classes + 1, 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        keep = mask.unsqueeze(1).to(features.dtype)
        emb = F.relu(self.embed(features.transpose(1, 2) * keep)) * keep
        attention = torch.sigmoid(self.attend(emb)).squeeze(1) * mask
        return BaseOutput(emb.transpose(1, 2), self.classify(emb).transpose(1, 2), attention)

    def loss(self, output: BaseOutput, batch: Batch, iteration: int):
        k = max(1, int(round(self.hp["k"])))
        target = torch.cat([batch.labels, torch.ones_like(batch.labels[:, :1])], 1)
        target = target / target.sum(1, keepdim=True)
        video = masked_topk_mean(output.cas, batch.mask, k)
        loss = -(target * F.log_softmax(video, 1)).sum(1).mean()
        sparsity = float(self.hp["sparsity"]) * output.attention.mean()
        return loss + sparsity, {"mil": loss.detach(), "sparsity": sparsity.detach()}


# -- the toy branch: its own file would be wtal_training/mllm4wtal/toy_prior.py -----------------------
class ToyPrior(MatchBranch):
    """A match branch: a learnt attention level the base attention is pulled towards."""

    def __init__(self) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.tensor(0.5))

    @classmethod
    def build(cls, setup: BranchSetup) -> ToyPrior:
        return cls()

    def match_terms(self, step: MatchStep) -> MatchTerms:
        attention = step.output.attention
        loss = ((attention - self.level) ** 2).mean()
        return MatchTerms(loss, {"toy_prior_loss": loss.detach()})


class Unwired(nn.Module):
    """Registered, but neither a match nor a reconstruction branch."""


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """The registrations, and the toy's config sections in copies of the two config files."""
    register_base_method("toy")(ToyMethod)
    MLLM4WTAL_MODULES.register("toy_prior")(ToyPrior)
    MLLM4WTAL_MODULES.register("unwired")(Unwired)
    schema = yaml.safe_load(config_schema.SCHEMA_FILE.read_text())
    schema["properties"]["toy"] = {
        "x-section": "method",
        "type": "object",
        "additionalProperties": False,
        "properties": {"width": {"type": "integer", "minimum": 1}, "sparsity": {"type": "number", "minimum": 0}},
    }
    defaults = yaml.safe_load(config_module.DEFAULTS_FILE.read_text())
    defaults["methods"]["toy"] = {"toy": {"width": 16, "sparsity": 0.1}, "data": {"max_seqlen": 64}}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    (tmp_path / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    monkeypatch.setattr(config_schema, "SCHEMA_FILE", tmp_path / "schema.yaml")
    monkeypatch.setattr(config_module, "DEFAULTS_FILE", tmp_path / "defaults.yaml")
    yield
    for registry, name in ((BASE_METHODS, "toy"), (MLLM4WTAL_MODULES, "toy_prior"), (MLLM4WTAL_MODULES, "unwired")):
        registry.unregister(name)


@pytest.fixture(autouse=True)
def _release_log_files():
    yield
    close_file_handlers()


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=16, num_train=12, num_test=6)


def test_a_new_base_method_trains_and_evaluates_through_the_cli(registered, toy_data, tmp_path):
    argv = ["train", "--data", str(toy_data), "--method", "toy", "--iterations", "10", "--device", "cpu"]
    argv += ["--output-dir", str(tmp_path / "run"), "--no-progress", *sum([["--set", s] for s in FAST], [])]
    assert main([*argv, "--set", "toy.sparsity=0.2"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["method"] == "toy" and results["config"]["toy"] == {"width": 16, "sparsity": 0.2}
    checkpoint = tmp_path / "run" / "seed0" / "checkpoint.safetensors"
    assert main(["evaluate", "--data", str(toy_data), "--checkpoint", str(checkpoint), "--device", "cpu",
                 "--output-dir", str(tmp_path / "eval")]) == 0  # fmt: skip
    again = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert again == json.loads((tmp_path / "run" / "seed0" / "predictions.json").read_text())
    assert any(again["results"].values())


def test_a_new_branch_trains_with_the_objective_and_evaluates(registered, toy_data, tmp_path):
    data = load_data(toy_data, "cpu")
    sets = [*FAST, "mllm4wtal.loc_hidden=8", "mllm4wtal.loc_warmup=0.2"]
    config = build_config("toy", "thumos14", sets=sets, iterations=10, modules=["toy_prior"])
    priors = FakeTextPriors(classes=data.gt["classes"])
    result = train_seed(data, config, 0, tmp_path / "run", text_priors=priors, progress=False)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "toy_prior_loss" in header and "loc_loss" in header and result["iterations"] == 10
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    for source in ("head", "base", "merge"):
        out = tmp_path / f"eval-{source}"
        argv = ["evaluate", "--data", str(toy_data), "--checkpoint", str(checkpoint), "--device", "cpu"]
        assert main([*argv, "--output-dir", str(out), "--proposal-source", source]) == 0
        assert (out / "map.json").is_file()


def test_a_registered_module_that_is_not_wired_in_is_refused(registered, toy_data, tmp_path):
    config = build_config("toy", "thumos14", modules=["unwired"])
    with pytest.raises(ConfigError, match="'unwired' is registered but not wired in"):
        check_objective_config(config, "priors")
    argv = ["train", "--data", str(toy_data), "--method", "toy", "--modules", "unwired", "--text-priors", "x"]
    assert main([*argv, "--device", "cpu", "--output-dir", str(tmp_path / "o"), "--log", str(tmp_path / "l")]) == 2
    assert "not wired in" in Path(tmp_path / "l").read_text()
