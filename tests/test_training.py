"""Sampler, engine, protocol and CLI on small generated feature sets (CPU, seconds)."""

import json

import numpy as np
import pytest
import torch
from helpers.toy_data import make_toy_dataset
from helpers.training_configs import fast_sets

from wtal_data.canonical import DatasetError, load_ground_truth, write_ground_truth
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.inference import evaluate_model, infer
from wtal_training.models import build_base_method
from wtal_training.objectives import PlainObjective
from wtal_training.sampler import BatchSampler, random_perturb_indices
from wtal_training.training import TrainingError, train_seed

torch.set_num_threads(1)
FAST = fast_sets(max_seqlen=48, log_every=10, checkpoint_every=5, timelines=1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=32, signal=3.0, length_range=(30, 70))


def cfg(method="delu", iterations=20, extra=()):
    return build_config(method, "thumos14", sets=FAST + list(extra), iterations=iterations)


def test_random_perturb_bins():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([10, 48, 200])
    idx = random_perturb_indices(lengths, 48, g)
    assert idx.shape == (3, 48)
    assert torch.equal(idx[1], torch.arange(48))
    for row, n in zip(idx, lengths.tolist()):
        assert row.min() >= 0 and row.max() < n
        assert torch.all(row[1:] >= row[:-1] - (200 // 48 + 1))
    lo = (torch.arange(48) * 200) // 48
    assert torch.all(idx[2] >= lo)  # each pick lies in its bin


def test_sampler_pairs_share_a_class_and_is_seeded(toy):
    data = load_data(toy, "cpu")
    a = BatchSampler(data.train, 10, 3, 48, seed=1)
    b = BatchSampler(data.train, 10, 3, 48, seed=1)
    for _ in range(5):
        x, y = a.sample(), b.sample()
        assert torch.equal(x.features, y.features) and x.video_ids == y.video_ids
        assert x.features.shape == (10, 48, 32) and x.mask.all()
        for p in range(3):
            assert x.video_ids[2 * p] != x.video_ids[2 * p + 1]
            assert (x.labels[2 * p] * x.labels[2 * p + 1]).sum() >= 1


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_padded_batched_inference_equals_single_video(toy, method):
    data = load_data(toy, "cpu")
    config = cfg(method, extra=["pool_t=8"] if method == "co2net" else [])
    torch.manual_seed(0)
    model = build_base_method(config, 32, 3).eval()
    batched = infer(model, data.test, max_snippets=10_000)
    single = infer(model, data.test, max_snippets=1)
    for vid in data.test.video_ids:
        np.testing.assert_allclose(batched[vid]["cas"], single[vid]["cas"], atol=1e-4)
        np.testing.assert_allclose(batched[vid]["attention"], single[vid]["attention"], atol=1e-5)


def test_training_is_deterministic_on_cpu(toy, tmp_path):
    data = load_data(toy, "cpu")
    runs = []
    for name in ("a", "b"):
        result = train_seed(data, cfg(iterations=10), 3, tmp_path / name, progress=False)
        rows = [line.split(",") for line in (tmp_path / name / "metrics.csv").read_text().splitlines()]
        runs.append(([r[:1] + r[2:] for r in rows], result["mAP"]))  # all but elapsed_s
    assert runs[0] == runs[1]


def test_trained_beats_untrained_and_writes_outputs(toy, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(toy),
            "--method",
            "co2net",
            "--iterations",
            "100",
            "--seeds",
            "0",
            "1",
            "--device",
            "cpu",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
        + sum([["--set", s] for s in FAST], [])
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["per_seed"]) == {"0", "1"} and "mean" in results and "std" in results
    for name in ("checkpoint.safetensors", "predictions.json", "map.json", "metrics.csv"):
        assert (out / "seed0" / name).exists()
    assert list((out / "seed0" / "timelines").glob("*.png")) and list((out / "seed0" / "tensorboard").iterdir())
    preds = json.loads((out / "seed0" / "predictions.json").read_text())
    gt = load_ground_truth(toy)
    for vid, items in preds["results"].items():  # seconds, within the video
        assert all(0 <= p["segment"][0] <= p["segment"][1] <= gt["database"][vid]["duration"] for p in items)
    data = load_data(toy, "cpu")
    config = cfg("co2net")
    torch.manual_seed(0)
    _, _, untrained, _ = evaluate_model(build_base_method(config, 32, 3), data.test, data.gt, config)
    assert results["mean"]["average_mAP"]["0.1:0.7"] > untrained["average_mAP"]["0.1:0.7"] + 0.15
    # re-evaluating the checkpoint reproduces the seed's figures
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(toy),
                "--checkpoint",
                str(out / "seed0" / "checkpoint.safetensors"),
                "--output-dir",
                str(tmp_path / "ev"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "ev" / "map.json").read_text())
    assert again["mAP"] == pytest.approx(results["per_seed"]["0"]["mAP"])


def test_run_dir_trains_one_seed_into_the_folder_without_scoring(toy, tmp_path):
    """The workflow's layout: one seed straight into --run-dir, its predictions identical to
    the same seed's under --output-dir, and no mAP file (the evaluation stage scores it)."""
    common = ["train", "--data", str(toy), "--method", "delu", "--iterations", "10", "--device", "cpu"]
    common += ["--no-progress"] + sum([["--set", s] for s in FAST], [])
    run_dir, out = tmp_path / "run", tmp_path / "out"
    assert main([*common, "--seeds", "1", "--run-dir", str(run_dir)]) == 0
    assert main([*common, "--seeds", "1", "--output-dir", str(out)]) == 0
    assert (
        json.loads((run_dir / "predictions.json").read_text())["results"]
        == (json.loads((out / "seed1" / "predictions.json").read_text())["results"])
    )
    record = json.loads((run_dir / "run.json").read_text())
    assert record["seed"] == 1 and record["iterations"] == 10 and record["synthetic"] is True
    assert (run_dir / "checkpoint.safetensors").exists() and list((run_dir / "timelines").glob("*.png"))
    assert not (run_dir / "map.json").exists() and not (run_dir / "seed1").exists()
    assert not (run_dir / "results.json").exists()
    assert main([*common, "--seeds", "0", "1", "--run-dir", str(tmp_path / "two")]) == 2


def test_nan_features_are_rejected(tmp_path):
    d = make_toy_dataset(tmp_path / "nan", feature_dim=8, num_train=6, num_test=3)
    arr = np.load(d / "features.npy")
    arr[5, 2] = np.nan
    np.save(d / "features.npy", arr)
    with pytest.raises(DatasetError, match="NaN or inf"):
        load_data(d, "cpu")
    assert (
        main(
            [
                "train",
                "--data",
                str(d),
                "--method",
                "delu",
                "--iterations",
                "2",
                "--device",
                "cpu",
                "--output-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_empty_split_and_class_mismatch(tmp_path, toy):
    d = make_toy_dataset(tmp_path / "empty", feature_dim=8, num_train=6, num_test=3)
    gt = load_ground_truth(d)
    for entry in gt["database"].values():
        entry["subset"] = "train"
    write_ground_truth(d, gt)
    with pytest.raises(DatasetError, match="'test' split is empty"):
        load_data(d, "cpu")
    # a checkpoint trained on 3 classes evaluated on a 4-class data set
    other = make_toy_dataset(tmp_path / "four", num_classes=4, feature_dim=32, num_train=8, num_test=4)
    ckpt_dir = tmp_path / "ck"
    train_seed(load_data(toy, "cpu"), cfg(iterations=2), 0, ckpt_dir, progress=False)
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(other),
                "--checkpoint",
                str(ckpt_dir / "checkpoint.safetensors"),
                "--output-dir",
                str(tmp_path / "x"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )


def test_nan_loss_stops_with_iteration_and_keeps_last_good_checkpoint(toy, tmp_path, monkeypatch):
    data = load_data(toy, "cpu")
    original = PlainObjective.step

    def poisoned(self, batch, iteration):
        if iteration == 7:
            batch.features = batch.features * float("nan")
        return original(self, batch, iteration)

    monkeypatch.setattr(PlainObjective, "step", poisoned)
    with pytest.raises(TrainingError, match="iteration 7"):
        train_seed(data, cfg(iterations=20), 0, tmp_path / "nan", progress=False)
    from wtal_training.checkpoint import load_checkpoint

    state, meta = load_checkpoint(tmp_path / "nan" / "checkpoint.safetensors")
    assert meta["iteration"] == 5 and meta["status"].startswith("stopped")
    assert all(torch.isfinite(v).all() for v in state.values())
