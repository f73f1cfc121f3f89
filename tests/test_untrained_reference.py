"""The workflow's `untrained` reference experiment (config/config.yaml) trains 0 iterations:
its checkpoint holds its seed's initial weights, bitwise, and its test predictions are those of
the initial model, for each of the five base methods; `evaluate` reloads that checkpoint.
CPU, seconds."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.toy_data import make_toy_dataset
from safetensors.torch import load_file

from wtal_common.io import atomic_write_json
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.inference import detect
from wtal_training.training import setup_seed_run, train_seed

torch.set_num_threads(1)
FAST = ["max_seqlen=48", "num_timeline_videos=1", "log_every=1", "checkpoint_every=1"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=32, signal=3.0, length_range=(30, 70))


@pytest.mark.parametrize("method", ["delu", "co2net", "ddgnet", "um", "zhou2023"])
def test_zero_iterations_keep_the_initial_model(toy, tmp_path, method):
    data = load_data(toy, "cpu")
    config = build_config(method, "thumos14", sets=FAST, iterations=0)
    seed = 1
    initial = setup_seed_run(data, config, seed, tmp_path / "initial", None, None)  # as `train` seeds it
    model = initial.objective.inference_model()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _, predictions = detect(model, data.test, data.gt, config)
    atomic_write_json(tmp_path / "initial.json", predictions)

    train_seed(data, config, seed, tmp_path / "run", progress=False, score=False)
    after = load_file(tmp_path / "run" / "checkpoint.safetensors")
    assert set(after) == set(before)
    assert all(torch.equal(after[name], weight) for name, weight in before.items())
    trained = json.loads((tmp_path / "run" / "predictions.json").read_text())
    assert trained == json.loads((tmp_path / "initial.json").read_text())
    if method == "delu":  # the checkpoint of 0 iterations reloads for `evaluate`
        code = main(
            ["evaluate", "--data", str(toy), "--checkpoint", str(tmp_path / "run" / "checkpoint.safetensors")]
            + ["--output-dir", str(tmp_path / "eval"), "--device", "cpu"]
        )
        assert code == 0 and (tmp_path / "eval" / "map.json").exists()
