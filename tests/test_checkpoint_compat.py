"""Checkpoints written by older code still load and predict as they did.

``tests/data/checkpoints/format1_*.safetensors`` were written by the code of commit d8b7334
(checkpoint format 1: the config stored flat, every method's fields side by side, nulls for
the other methods' ones, ``proposal_source`` inside it, ``inference_model: "mllm4wtal"``),
trained a few iterations on the toy set built below; ``format1_expected.json`` holds the first
five detections per test video that code gave for them (for the plug-in checkpoint, with each
proposal source).  Whatever the current format, these must load and give the same detections.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers.toy_data import make_toy_dataset
from wtal_training.checkpoint import CheckpointError
from wtal_training.data import load_data
from wtal_training.inference import detect
from wtal_training.trained_model import load_trained_model

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "data" / "checkpoints"
EXPECTED = json.loads((FIXTURES / "format1_expected.json").read_text())
CASES = [(name, source) for name, sources in sorted(EXPECTED.items()) for source in sorted(sources)]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy set the fixtures were trained and predicted on (same arguments)."""
    directory = make_toy_dataset(
        tmp_path_factory.mktemp("toy"), feature_dim=8, num_train=8, num_test=4, length_range=(20, 40)
    )
    return load_data(directory, "cpu")


def _close(got: list[dict], want: list[dict]) -> bool:
    if [d["label"] for d in got] != [d["label"] for d in want]:
        return False
    return all(
        d["segment"] == w["segment"] and d["score"] == pytest.approx(w["score"], rel=1e-5, abs=1e-6)
        for d, w in zip(got, want)
    )


@pytest.mark.parametrize(("name", "source"), CASES)
def test_format1_checkpoint_loads_and_predicts_as_before(toy, name, source):
    trained = load_trained_model(FIXTURES / f"format1_{name}.safetensors", "cpu")
    assert trained.classes == toy.gt["classes"]
    _, predictions = detect(trained.model, toy.test, toy.gt, trained.config, source)
    for video, want in EXPECTED[name][source].items():
        got = predictions["results"][video][: len(want)]
        assert _close(got, want), f"{name} ({source}), {video}: {got[:2]} != {want[:2]}"


def test_unreadable_stored_config_says_why(tmp_path):
    """A format-1 config whose method no longer exists cannot be converted: the error names
    the file and the field."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = FIXTURES / "format1_delu.safetensors"
    with safe_open(str(source), framework="pt") as handle:
        meta = handle.metadata()
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(meta["config"])
    config["method"] = "gone"
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={**meta, "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*method"):
        load_trained_model(tmp_path / "bad.safetensors", "cpu")
