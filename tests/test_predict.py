"""``python -m wtal_training predict``: a trained checkpoint on new videos' features.

Tiny checkpoints trained for a few iterations on generated toy data (tests/helpers/toy_data.py);
the same checkpoint is also scored by ``evaluate``, whose predictions ``predict`` must equal.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.mllm4wtal_fakes import FakeTextPriors
from helpers.toy_data import make_toy_dataset
from helpers.training_configs import TINY_BRANCHES, fast_sets
from helpers.workflow import fake_outputs, planned_jobs, run, scratch_copy
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from wtal_data.canonical import FeatureStore, load_ground_truth, videos_in_subset
from wtal_training.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.training import train_seed

torch.set_num_threads(1)
FAST = fast_sets(max_seqlen=24, log_every=5, checkpoint_every=5, timelines=0)
PNG = b"\x89PNG\r\n\x1a\n"
DIM = 16


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(
        tmp_path_factory.mktemp("toy") / "toy", feature_dim=DIM, num_train=12, num_test=6, length_range=(30, 60)
    )


@pytest.fixture(scope="module")
def checkpoint(toy, tmp_path_factory):
    """A DELU checkpoint after 10 iterations on the toy set."""
    out = tmp_path_factory.mktemp("run")
    train_seed(
        load_data(toy, "cpu"), build_config("delu", "thumos14", sets=FAST, iterations=10), 0, out, progress=False
    )
    return out / "checkpoint.safetensors"


@pytest.fixture(scope="module")
def plugin_checkpoint(toy, tmp_path_factory):
    """CO2-Net + KSM + CSR + localization head (an MLLM4WTAL inference model) after 10 iterations."""
    out = tmp_path_factory.mktemp("plugin")
    data = load_data(toy, "cpu")
    config = build_config("co2net", "thumos14", sets=FAST, iterations=10, modules=["ksm", "csr", "loc"])
    config = config.updated({"mllm4wtal": TINY_BRANCHES})
    train_seed(data, config, 0, out, text_priors=FakeTextPriors(classes=data.gt["classes"]), progress=False)
    return out / "checkpoint.safetensors"


@pytest.fixture(scope="module")
def test_ids(toy):
    return videos_in_subset(load_ground_truth(toy), "test")


def predict(tmp_path: Path, checkpoint: Path, *features, extra=(), name="detections.json") -> tuple[int, dict | None]:
    output = tmp_path / name
    argv = ["predict", "--checkpoint", str(checkpoint), "--features", *map(str, features)]
    code = main([*argv, "--output", str(output), "--device", "cpu", *extra])
    return code, (json.loads(output.read_text()) if output.exists() else None)


def evaluate(tmp_path: Path, toy: Path, checkpoint: Path, extra=(), name="evaluate") -> dict:
    out = tmp_path / name
    argv = ["evaluate", "--data", str(toy), "--checkpoint", str(checkpoint), "--output-dir", str(out)]
    assert main([*argv, "--device", "cpu", *extra]) == 0
    return json.loads((out / "predictions.json").read_text())


def write_per_video(toy: Path, directory: Path, video_ids: list[str]) -> Path:
    store = FeatureStore.open(toy)
    directory.mkdir(parents=True)
    for vid in video_ids:
        np.save(directory / f"{vid}.npy", np.asarray(store[vid]))
    return directory


def write_extract_output(toy: Path, directory: Path, video_ids: list[str]) -> Path:
    """The layout `python -m wtal_data extract` writes: rgb/ and flow/ halves, settings.json."""
    store = FeatureStore.open(toy)
    for stream in ("rgb", "flow"):
        (directory / stream).mkdir(parents=True)
    for vid in video_ids:
        x = np.asarray(store[vid])
        np.save(directory / "rgb" / f"{vid}.npy", x[:, : DIM // 2])
        np.save(directory / "flow" / f"{vid}.npy", x[:, DIM // 2 :])
    (directory / "settings.json").write_text(json.dumps({"fps": 25.0, "snippet_frames": 16}))
    return directory


# ------------------------------------------------------------------ one inference path


def test_predict_on_a_data_set_equals_evaluate(toy, checkpoint, test_ids, tmp_path):
    evaluated = evaluate(tmp_path, toy, checkpoint)
    code, predicted = predict(tmp_path, checkpoint, toy, extra=["--subset", "test", "--top-n", "0"])
    assert code == 0
    assert predicted["results"] == evaluated["results"] and list(predicted["results"]) == test_ids
    assert predicted["version"] == evaluated["version"]
    assert predicted["provenance"]["checkpoint"] == str(checkpoint)
    # without --subset: every video of the set, train ones too
    code, everything = predict(tmp_path, checkpoint, toy, extra=["--top-n", "0"], name="all.json")
    assert code == 0 and set(everything["results"]) == set(load_ground_truth(toy)["database"])


def test_plugin_checkpoint_predicts_like_evaluate(toy, plugin_checkpoint, test_ids, tmp_path):
    assert load_checkpoint(plugin_checkpoint)[1]["objective"] == "mllm4wtal"
    evaluated = evaluate(tmp_path, toy, plugin_checkpoint)
    code, predicted = predict(tmp_path, plugin_checkpoint, toy, extra=["--subset", "test", "--top-n", "0"])
    assert code == 0 and predicted["results"] == evaluated["results"]
    folder = write_per_video(toy, tmp_path / "feats", test_ids)
    code, from_files = predict(tmp_path, plugin_checkpoint, folder, extra=["--top-n", "0"], name="files.json")
    assert code == 0 and from_files["results"] == evaluated["results"]


def test_proposal_source_reruns_the_same_weights(toy, plugin_checkpoint, test_ids, tmp_path):
    """The inference-only experiments: head (the default of a plug-in checkpoint), base and
    merge proposals of the same weights; --no-score writes no map.json (scored elsewhere)."""
    default = evaluate(tmp_path, toy, plugin_checkpoint)
    head = evaluate(tmp_path, toy, plugin_checkpoint, ["--proposal-source", "head", "--no-score"], "head")
    base = evaluate(tmp_path, toy, plugin_checkpoint, ["--proposal-source", "base", "--no-score"], "base")
    merged = evaluate(tmp_path, toy, plugin_checkpoint, ["--proposal-source", "merge", "--no-score"], "merge")
    assert head["results"] == default["results"]
    assert base["results"] != head["results"] and merged["results"] not in (head["results"], base["results"])
    assert not (tmp_path / "head" / "map.json").exists() and (tmp_path / "evaluate" / "map.json").exists()
    code, predicted = predict(
        tmp_path, plugin_checkpoint, toy, extra=["--subset", "test", "--top-n", "0", "--proposal-source", "base"]
    )
    assert code == 0 and predicted["results"] == base["results"]


# ------------------------------------------------------------------ each input kind


def test_folder_extract_output_and_single_files_give_the_data_sets_detections(toy, checkpoint, test_ids, tmp_path):
    _, reference = predict(tmp_path, checkpoint, toy, extra=["--subset", "test", "--top-n", "0"], name="ref.json")
    folder = write_per_video(toy, tmp_path / "feats", test_ids)
    code, from_folder = predict(tmp_path, checkpoint, folder, extra=["--top-n", "0"], name="folder.json")
    assert code == 0 and from_folder["results"] == reference["results"]
    extracted = write_extract_output(toy, tmp_path / "extract", test_ids)
    code, from_extract = predict(tmp_path, checkpoint, extracted, extra=["--top-n", "0"], name="extract.json")
    assert code == 0 and from_extract["results"] == reference["results"]  # RGB then flow, as ingest
    assert from_extract["provenance"]["snippet_seconds"] == pytest.approx(16 / 25)
    # single files, several PATHs in one command: each video under its file's stem
    files = [folder / f"{vid}.npy" for vid in test_ids[:2]]
    code, from_files = predict(tmp_path, checkpoint, *files, extra=["--top-n", "0"], name="files.json")
    assert code == 0 and list(from_files["results"]) == test_ids[:2]
    for vid in test_ids[:2]:
        assert [r["segment"] for r in from_files["results"][vid]] == [r["segment"] for r in reference["results"][vid]]


def test_extract_output_streams_one_snippet_apart_are_cropped(toy, checkpoint, test_ids, tmp_path):
    extracted = write_extract_output(toy, tmp_path / "extract", test_ids[:1])
    flow = extracted / "flow" / f"{test_ids[0]}.npy"
    np.save(flow, np.load(flow)[:-1])
    code, result = predict(tmp_path, checkpoint, extracted)
    length = len(np.load(flow))
    assert code == 0 and max(r["segment"][1] for r in result["results"][test_ids[0]]) <= round(length * 0.64, 3)


# ------------------------------------------------------------------ output format


def test_seconds_class_names_top_n_and_score_floor(toy, checkpoint, test_ids, tmp_path):
    folder = write_per_video(toy, tmp_path / "feats", test_ids)
    _, full = predict(tmp_path, checkpoint, folder, extra=["--top-n", "0"], name="full.json")
    classes = load_checkpoint(checkpoint)[1]["classes"]
    lengths = {vid: len(np.load(folder / f"{vid}.npy")) for vid in test_ids}
    for vid, items in full["results"].items():
        assert items and all(r["label"] in classes for r in items)  # names from the checkpoint
        assert all(0 <= r["segment"][0] < r["segment"][1] <= round(lengths[vid] * 0.64, 3) for r in items)
        assert [r["score"] for r in items] == sorted((r["score"] for r in items), reverse=True)
    # seconds: the same snippets at 0.5 s each are the same segments scaled by 0.5 / 0.64
    _, half = predict(tmp_path, checkpoint, folder, extra=["--top-n", "0", "--snippet-seconds", "0.5"], name="h.json")
    for vid in test_ids:
        at_half = np.array([r["segment"] for r in half["results"][vid]])
        np.testing.assert_allclose(
            at_half, np.array([r["segment"] for r in full["results"][vid]]) * 0.5 / 0.64, atol=2e-3
        )
        np.testing.assert_array_equal(at_half * 2, np.round(at_half * 2))  # whole snippets of 0.5 s
    # top-N keeps each video's N best; the score floor drops those below it
    _, top = predict(tmp_path, checkpoint, folder, extra=["--top-n", "3"], name="top.json")
    assert all(top["results"][vid] == full["results"][vid][:3] for vid in test_ids)
    floor = float(np.median([r["score"] for items in full["results"].values() for r in items]))
    _, floored = predict(tmp_path, checkpoint, folder, extra=["--top-n", "0", "--min-score", str(floor)], name="f.json")
    for vid in test_ids:
        assert floored["results"][vid] == [r for r in full["results"][vid] if r["score"] >= floor]
    # the default keeps 100 per video
    _, default = predict(tmp_path, checkpoint, folder, name="default.json")
    assert all(default["results"][vid] == full["results"][vid][:100] for vid in test_ids)
    assert max(len(v) for v in full["results"].values()) > 0


def test_timelines_one_png_per_video_with_ground_truth_when_known(toy, checkpoint, test_ids, tmp_path):
    folder = write_per_video(toy, tmp_path / "feats", test_ids[:2])
    assert predict(tmp_path, checkpoint, folder, extra=["--timelines", str(tmp_path / "tl_files")])[0] == 0
    extra = ["--subset", "test", "--timelines", str(tmp_path / "tl_set")]
    assert predict(tmp_path, checkpoint, toy, extra=extra, name="set.json")[0] == 0
    files = sorted(p.name for p in (tmp_path / "tl_files").glob("*.png"))
    assert files == sorted(["overview.png", *(f"{vid}.png" for vid in test_ids[:2])])
    assert sorted(p.name for p in (tmp_path / "tl_set").glob("*.png")) == sorted(
        ["overview.png", *(f"{vid}.png" for vid in test_ids)]
    )
    files.remove("overview.png")
    for name in files:  # same detections; the data set's timeline also draws its ground truth
        unknown, known = (tmp_path / "tl_files" / name).read_bytes(), (tmp_path / "tl_set" / name).read_bytes()
        assert unknown.startswith(PNG) and known.startswith(PNG) and unknown != known


def test_timeline_of_a_resampled_video_spans_the_video(tmp_path):
    from wtal_training import plots

    # 4 snippets of 0.5 s seen as-is; 10 snippets seen as 4 resampled steps (2.5 snippets each)
    np.testing.assert_allclose(plots.attention_times(4, 4, 0.5), [0.25, 0.75, 1.25, 1.75])
    np.testing.assert_allclose(plots.attention_times(4, 10, 0.5), [0.625, 1.875, 3.125, 4.375])
    outputs = {"a": {"attention": np.zeros(4)}, "b": {"attention": np.zeros(4), "video_length": np.asarray(10)}}
    gt = {
        "classes": ["x"],
        "snippet_seconds": 0.5,
        "database": {v: {"duration": 5.0, "annotations": [{"label": "x", "segment": [0, 1]}]} for v in outputs},
    }
    for vid, expected in (("a", [0.25, 0.75, 1.25, 1.75]), ("b", [0.625, 1.875, 3.125, 4.375])):
        fig = plots.timeline_figure(gt, vid, outputs[vid], [])
        (signals,) = [ax for ax in fig.axes if ax.get_label() == "signals"]
        np.testing.assert_allclose(signals.lines[0].get_xdata(), expected)
        plots.figure_png(fig)  # closes it
    names = sorted(p.name for p in plots.plot_timelines(tmp_path, gt, outputs, {"results": {}}, None))
    assert names == ["a.png", "b.png", "overview.png"]


# ------------------------------------------------------------------ bad input: exit 2, the file named


def with_format(checkpoint: Path, destination: Path, version) -> Path:
    with safe_open(str(checkpoint), framework="pt") as handle:
        meta = dict(handle.metadata())
    if version is None:
        meta.pop("format_version")
    else:
        meta["format_version"] = json.dumps(version)
    save_file(load_file(checkpoint), str(destination), metadata=meta)
    return destination


def bad_feature_file(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / f"{kind}_video.npy"
    if kind == "width":
        np.save(path, rng.normal(size=(20, DIM // 2)).astype(np.float32))
    elif kind == "nan":
        x = rng.normal(size=(20, DIM)).astype(np.float32)
        x[7] = np.nan
        np.save(path, x)
    elif kind == "empty":
        np.save(path, np.zeros((0, DIM), dtype=np.float32))
    elif kind == "not_npy":
        path.write_text("not an array")
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("width", "has 8 feature dims"),
        ("nan", "contain NaN or inf"),
        ("empty", "zero snippets"),
        ("not_npy", "cannot be read as a plain .npy"),
    ],
)
def test_bad_features_exit_2_naming_the_file(checkpoint, tmp_path, capsys, kind, message):
    path = bad_feature_file(tmp_path, kind)
    code, written = predict(tmp_path, checkpoint, path)
    err = capsys.readouterr().err
    assert code == 2 and written is None
    assert str(path) in err and message in err


def test_incompatible_checkpoint_exits_2_naming_it(checkpoint, toy, tmp_path, capsys):
    assert load_checkpoint(checkpoint)[1]["format_version"] == CHECKPOINT_FORMAT
    newer = with_format(checkpoint, tmp_path / "newer.safetensors", CHECKPOINT_FORMAT + 1)
    code, written = predict(tmp_path, newer, toy)
    err = capsys.readouterr().err
    assert code == 2 and written is None and str(newer) in err and f"format {CHECKPOINT_FORMAT + 1}" in err
    with pytest.raises(CheckpointError, match="format 'x'"):
        load_checkpoint(with_format(checkpoint, tmp_path / "odd.safetensors", "x"))
    # a checkpoint from before the field is format 1, and loads
    older = with_format(checkpoint, tmp_path / "older.safetensors", None)
    assert predict(tmp_path, older, toy, extra=["--subset", "test"], name="older.json")[0] == 0


def test_inputs_disagreeing_on_snippet_length_or_twice_the_same_video_exit_2(
    toy, checkpoint, test_ids, tmp_path, capsys
):
    folder = write_per_video(toy, tmp_path / "feats", test_ids[:1])
    code, _ = predict(tmp_path, checkpoint, toy, extra=["--snippet-seconds", "1.0"])
    assert code == 2 and "ground_truth.json: 0.64" in capsys.readouterr().err
    code, _ = predict(tmp_path, checkpoint, toy, folder, extra=["--subset", "test"])
    err = capsys.readouterr().err
    assert code == 2 and f"{folder / test_ids[0]}.npy" in err and "already read from" in err
    code, _ = predict(tmp_path, checkpoint, folder, extra=["--subset", "test"])
    assert code == 2 and "--subset" in capsys.readouterr().err


# ------------------------------------------------------------------ workflow

TARGET = "results/predictions/demo/synthetic/default.json"
TIMELINES = "results/predictions/demo/synthetic/default/timelines"


def replace_keeping_mtime(source: Path, destination: Path) -> None:
    """Real content in place of a touched output, its recorded time kept: nothing upstream reruns."""
    stat = destination.stat()
    shutil.copyfile(source, destination)
    os.utime(destination, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_workflow_predictions_target(toy, checkpoint, tmp_path):
    """Dry run: the target trains the first configured seed only, then predicts.  Real run:
    with the chain recorded as done (`snakemake --touch`) and the data set and checkpoint
    replaced by real toy ones, the rule itself runs and writes the detections and timelines."""
    root = scratch_copy(tmp_path / "wf")
    jobs = planned_jobs(run(root, "-n", TARGET).stdout)
    assert jobs["train"] == 1 and jobs["predict"] == 1 and "evaluate" not in jobs
    fake_outputs(root, TARGET)  # the whole chain recorded as done, with empty files
    (root / TARGET).unlink()
    shutil.rmtree(root / TIMELINES)
    canonical = root / "data" / "demo" / "canonical"
    for name in ("ground_truth.json", "features.npy", "features_index.json"):
        replace_keeping_mtime(toy / name, canonical / name)
    replace_keeping_mtime(checkpoint, root / "results/runs/demo/synthetic/default/seed0/checkpoint.safetensors")
    proc = run(root, "--cores", "1", TARGET)
    assert planned_jobs(proc.stdout) == {"predict": 1}, proc.stdout[-3000:]
    result = json.loads((root / TARGET).read_text())
    test_ids = videos_in_subset(load_ground_truth(toy), "test")
    assert list(result["results"]) == test_ids
    assert sorted(p.stem for p in (root / TIMELINES).glob("*.png")) == sorted([*test_ids, "overview"])
    # config.yaml's `prediction` reaches the command: a smaller top-n reruns predict alone
    proc = run(root, "--cores", "1", TARGET, "--config", "prediction={top_n: 2}")
    assert planned_jobs(proc.stdout) == {"predict": 1}, proc.stdout[-3000:]
    fewer = json.loads((root / TARGET).read_text())["results"]
    assert all(fewer[v] == result["results"][v][:2] for v in test_ids)
    assert max(len(r) for r in result["results"].values()) > 2
