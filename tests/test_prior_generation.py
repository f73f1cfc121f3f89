"""Prior generation: frames, prompts, backends (tiny real hf model, template, synthetic),
resume after a kill, a corrupt video, sharding + merge, and the Parquet contract.

Every video here is a tiny H.264 mp4 written with imageio-ffmpeg; the MLLM is a tiny
random-weight model of a real architecture built locally (no download).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from prior_generation import frames as frames_mod
from prior_generation.backends.hf import HFBackend
from prior_generation.cli import main as cli_main
from prior_generation.generate import GenerateConfig, expected_keys, parse_shard, plan_work, run_generate
from prior_generation.merge import merge_shards
from prior_generation.prompts import DEFAULT_TEMPLATES, prompt_hash, readable_class_name, render_prompt
from prior_generation.store import COLUMNS, SCHEMA, PartWriter, PriorsFileError, read_table
from wtal_data.canonical import write_ground_truth

CLASSES = ["CliffDiving", "TennisSwing"]
CORRUPT = "video_validation_0000099"


def _write_mp4(path: Path, num_frames: int, width: int = 64, height: int = 48) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=10,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=16,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for i in range(num_frames):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = (i * 9) % 256
        frame[: height // 2, : width // 2, 1] = 200
        writer.send(frame.tobytes())
    writer.close()


def _make_dataset(root: Path, num_videos: int, corrupt: bool = False) -> tuple[Path, Path]:
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    database = {}
    for i in range(num_videos):
        vid = f"video_validation_{i:07d}"
        _write_mp4(videos / f"{vid}.mp4", 12 + 3 * i)
        labels = ["CliffDiving"] + (["TennisSwing"] if i % 2 else [])
        database[vid] = {
            "subset": "train",
            "duration": 2.0,
            "fps": 10.0,
            "labels": labels,
            "annotations": [{"label": c, "segment": [0.1, 1.0]} for c in labels],
        }
    if corrupt:
        (videos / f"{CORRUPT}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 20)
        database[CORRUPT] = {
            "subset": "train",
            "duration": 2.0,
            "fps": 10.0,
            "labels": ["TennisSwing"],
            "annotations": [],
        }
    database["video_test_0000001"] = {
        "subset": "test",
        "duration": 2.0,
        "fps": 10.0,
        "labels": ["TennisSwing"],
        "annotations": [],
    }
    gt = {
        "schema_version": 1,
        "dataset": "tiny-test",
        "synthetic": True,
        "classes": CLASSES,
        "snippet_seconds": 0.64,
        "database": database,
        "ambiguous": {},
    }
    canonical = root / "canonical"
    write_ground_truth(canonical, gt)
    return canonical / "ground_truth.json", videos


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("priors_data")
    gt, videos = _make_dataset(root, 4, corrupt=True)
    return gt, videos


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from prior_generation.tiny_model import build_tiny_model

    return build_tiny_model("llava_next_video", tmp_path_factory.mktemp("tiny_llava"))


def _hf_config(gt, videos, model, out, **kw):
    base = dict(
        ground_truth=gt,
        videos=videos,
        output=out,
        backend="hf",
        model=str(model),
        num_frames=4,
        batch_size=3,
        max_new_tokens_key=6,
        max_new_tokens_complete=10,
    )
    base.update(kw)
    return GenerateConfig(**base)


# -- prompts and frames ------------------------------------------------------------------------


def test_readable_class_names_and_prompts():
    assert readable_class_name("CliffDiving") == "cliff diving"
    assert readable_class_name("TVShow") == "tv show"
    assert readable_class_name("Playing bagpipes") == "playing bagpipes"
    assert readable_class_name("Shot_put") == "shot put"
    assert render_prompt(DEFAULT_TEMPLATES["key"], "CliffDiving") == (
        "This video contains the actions of cliff diving. Please describe the action of cliff diving with one sentence."
    )
    assert prompt_hash(DEFAULT_TEMPLATES["key"]) != prompt_hash(DEFAULT_TEMPLATES["complete"])
    with pytest.raises(ValueError, match="cls"):
        GenerateConfig(ground_truth=Path("x"), videos=None, output=Path("o"), prompt_key="no class here")


def test_sample_indices_uniform_sorted_and_short_videos():
    assert frames_mod.sample_indices(100, 4) == [12, 37, 62, 87]
    short = frames_mod.sample_indices(3, 8)
    assert len(short) == 8 and short == sorted(short) and max(short) <= 2
    assert frames_mod.sample_indices(20, 4, fps=25.0, target_fps=5.0) == [0, 5, 10, 15]
    # more frames at the target rate than N: N of them spread over the whole video, not its start
    assert frames_mod.sample_indices(100, 4, fps=25.0, target_fps=5.0) == [10, 35, 60, 85]


def test_prefetch_decodes_native_size_and_reports_errors(dataset):
    gt, videos = dataset
    items = [
        ("video_validation_0000001", videos / "video_validation_0000001.mp4"),
        ("missing", videos / "missing.mp4"),
        (CORRUPT, videos / f"{CORRUPT}.mp4"),
    ]
    out = list(frames_mod.prefetch_videos(items, num_frames=4, depth=2))
    assert [v.video_id for v in out] == ["video_validation_0000001", "missing", CORRUPT]
    good, missing, corrupt = out
    assert good.ok and good.frames.shape == (4, 48, 64, 3) and good.frames.dtype == np.uint8
    assert good.total_frames == 15 and good.fps == pytest.approx(10.0) and good.indices == [1, 5, 9, 13]
    assert not missing.ok and "not found" in missing.error and "missing.mp4" in missing.error
    assert not corrupt.ok and CORRUPT in corrupt.error


# -- backends end to end -----------------------------------------------------------------------


def test_hf_backend_end_to_end_with_corrupt_video(dataset, tiny_llava, tmp_path):
    gt, videos = dataset
    out = tmp_path / "hf.parquet"
    summary = run_generate(_hf_config(gt, videos, tiny_llava, out))
    table = read_table(out)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    keys = [(r["video_id"], r["class_name"], r["kind"]) for r in rows]
    assert keys == sorted(expected_keys(json.loads(Path(gt).read_text())))
    assert len(keys) == len(set(keys)) == 2 * (4 + 2 + 1)
    good = [r for r in rows if r["video_id"] != CORRUPT]
    assert all(r["error"] is None and isinstance(r["text"], str) for r in good)
    assert all(r["num_frames"] == 4 and len(r["frame_indices"]) == 4 and r["fps"] == pytest.approx(10.0) for r in good)
    assert all(r["backend"] == "hf" and r["model"] == str(tiny_llava) for r in rows)
    key_params = json.loads(next(r for r in good if r["kind"] == "key")["generation_params"])
    assert key_params["max_new_tokens"] == 6 and key_params["do_sample"] is False
    # the dtype is recorded (CPU default float32), so a rerun in another dtype reuses none of these rows
    assert key_params["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    bf16 = HFBackend(str(tiny_llava), max_new_tokens={"key": 6, "complete": 10}, num_frames=4, dtype="bfloat16")
    assert bf16.generation_params("key") == {**key_params, "dtype": "bfloat16"}
    # a random model rarely stops by itself: rows that used every token are flagged
    assert all(r["flags"] in (None, "truncated", "empty", "empty,truncated") for r in good)
    bad = [r for r in rows if r["video_id"] == CORRUPT]
    assert len(bad) == 2 and all(r["error"] and r["text"] is None for r in bad)
    assert not summary.ok and len(summary.failures) == 2
    # the same greedy settings give the same texts (deterministic), reusing nothing
    again = run_generate(_hf_config(gt, videos, tiny_llava, tmp_path / "hf2.parquet"))
    assert again.reused == 0
    assert [r["text"] for r in read_table(tmp_path / "hf2.parquet").to_pylist()] == [r["text"] for r in rows]


def test_qwen2_vl_tiny_model_built_by_cli_runs(dataset, tmp_path):
    gt, videos = dataset
    model = tmp_path / "qwen"
    assert cli_main(["build-tiny-model", "--arch", "qwen2_vl", "--output", str(model)]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "qwen2_vl" and config["text_config"]["hidden_size"] == 32
    out = tmp_path / "qwen.parquet"
    run_generate(_hf_config(gt, videos, model, out, shard=(1, 2)))
    rows = read_table(out).to_pylist()
    assert rows and all(r["error"] is None for r in rows)


def test_cli_exit_code_and_fail_fast(dataset, tiny_llava, tmp_path, capsys):
    gt, videos = dataset
    args = [
        "generate",
        "--ground-truth",
        str(gt),
        "--videos",
        str(videos),
        "--backend",
        "hf",
        "--model",
        str(tiny_llava),
        "--num-frames",
        "2",
        "--max-new-tokens-key",
        "3",
        "--max-new-tokens-complete",
        "3",
    ]
    assert cli_main(args + ["--output", str(tmp_path / "a.parquet")]) == 1
    err = capsys.readouterr().err
    assert "2 failed row(s)" in err and CORRUPT in err
    assert (tmp_path / "a.parquet.log").read_text().count(CORRUPT) >= 2
    # --fail-fast stops at the corrupt video: no final file
    assert cli_main(args + ["--output", str(tmp_path / "b.parquet"), "--fail-fast", "--shard", "0/1"]) == 1
    assert not (tmp_path / "b.parquet").exists()
    # bad configuration: exit 2 with the field named
    assert cli_main(["generate", "--ground-truth", str(gt), "--backend", "hf", "--output", str(tmp_path / "c")]) == 2
    assert "--videos" in capsys.readouterr().err


def test_template_backend_needs_no_video(dataset, tmp_path):
    gt, _ = dataset
    out = tmp_path / "tpl.parquet"
    summary = run_generate(GenerateConfig(ground_truth=gt, videos=None, output=out, backend="template"))
    assert summary.ok
    rows = read_table(out).to_pylist()
    texts = {(r["class_name"], r["kind"]): r["text"] for r in rows}
    assert texts[("CliffDiving", "key")] == "cliff diving"
    assert texts[("TennisSwing", "complete")] == "a video of the tennis swing"
    assert all(r["num_frames"] == 0 and r["frame_indices"] == [] for r in rows)
    assert {r["model"] for r in rows} == {""}


def test_synthetic_backend_wraps_describer(dataset, tmp_path):
    pytest.importorskip("wtal_data.synthetic.describer")
    gt, _ = dataset
    scripts = {
        "schema_version": 1,
        "describer": {"omit_prob": 0.0, "wrong_prob": 0.0, "key_phases": 1},
        "background_words": ["crowd"],
        "classes": {
            "CliffDiving": {
                "phases": [
                    {"word": "jump", "weight": 2.0, "key": True, "shared_with": []},
                    {"word": "splash", "weight": 1.0, "key": False, "shared_with": []},
                ],
                "context": ["cliff"],
            },
            "TennisSwing": {
                "phases": [{"word": "swing", "weight": 2.0, "key": True, "shared_with": []}],
                "context": ["court"],
            },
        },
        "videos": {},
    }
    path = tmp_path / "scripts.json"
    path.write_text(json.dumps(scripts))
    out = tmp_path / "syn.parquet"
    summary = run_generate(
        GenerateConfig(ground_truth=gt, videos=None, output=out, backend="synthetic", scripts=path, seed=3)
    )
    assert summary.ok
    rows = read_table(out).to_pylist()
    key = next(r for r in rows if r["class_name"] == "CliffDiving" and r["kind"] == "key")
    assert "jump" in key["text"] and json.loads(key["generation_params"])["seed"] == 3
    complete = next(r for r in rows if r["class_name"] == "CliffDiving" and r["kind"] == "complete")
    assert "splash" in complete["text"]
    with pytest.raises(ValueError, match="--scripts"):
        run_generate(GenerateConfig(ground_truth=gt, videos=None, output=out, backend="synthetic"))


# -- resume, shards, merge, schema -------------------------------------------------------------


def test_resume_after_kill_gives_each_row_exactly_once(tmp_path, tiny_llava):
    gt, videos = _make_dataset(tmp_path / "data", 8)
    out, work = tmp_path / "shard.parquet", tmp_path / "work"
    cmd = [
        sys.executable,
        "-m",
        "prior_generation",
        "generate",
        "--ground-truth",
        str(gt),
        "--videos",
        str(videos),
        "--backend",
        "hf",
        "--model",
        str(tiny_llava),
        "--num-frames",
        "4",
        "--batch-size",
        "1",
        "--max-new-tokens-key",
        "24",
        "--max-new-tokens-complete",
        "24",
        "--output",
        str(out),
        "--work-dir",
        str(work),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not len(list(work.glob("part-*.parquet"))) >= 2 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    total = len(expected_keys(json.loads(gt.read_text())))
    parts_before = len(list(work.glob("part-*.parquet")))
    assert 2 <= parts_before < total, "the kill should land mid-run"
    assert not out.exists()
    # a half-written temporary file from the kill must be ignored
    (work / ".part-000999.parquet.tmp").write_bytes(b"PAR1 truncated")
    done_before = PartWriter(work).read_latest()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(done_before)} reused" in result.stdout
    rows = read_table(out).to_pylist()
    keys = [(r["video_id"], r["class_name"], r["kind"]) for r in rows]
    assert len(keys) == len(set(keys)) == total
    # rows done before the kill were kept, not regenerated
    for key, row in done_before.items():
        assert rows[keys.index(key)]["created_at"] == row["created_at"]


def test_changed_prompt_regenerates_stale_rows(dataset, tmp_path):
    gt, _ = dataset
    out, work = tmp_path / "t.parquet", tmp_path / "w"
    first = run_generate(GenerateConfig(ground_truth=gt, videos=None, output=out, backend="template", work_dir=work))
    assert first.reused == 0
    same = run_generate(GenerateConfig(ground_truth=gt, videos=None, output=out, backend="template", work_dir=work))
    assert same.reused == same.total and same.generated == 0
    changed = run_generate(
        GenerateConfig(
            ground_truth=gt,
            videos=None,
            output=out,
            backend="template",
            work_dir=work,
            prompt_key="Describe {cls} briefly.",
        )
    )
    assert changed.reused == changed.total // 2  # only the complete rows are still current
    rows = read_table(out).to_pylist()
    assert {r["prompt"] for r in rows if r["kind"] == "key"} >= {"Describe cliff diving briefly."}
    assert len(rows) == changed.total


def test_shards_partition_the_work_and_merge_checks_completeness(dataset, tmp_path):
    gt, _ = dataset
    data = json.loads(Path(gt).read_text())
    plans = [plan_work(data, (i, 3)) for i in range(3)]
    ids = [v for p in plans for v, _ in p]
    assert sorted(ids) == sorted(v for v, _ in plan_work(data)) and len(ids) == len(set(ids))
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError):
        parse_shard("3/3")
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"shard-{i}-of-3.parquet")
        run_generate(
            GenerateConfig(
                ground_truth=gt, videos=None, output=shards[-1], backend="template", shard=(i, 3), mllm_name="template"
            )
        )
    merged = tmp_path / "descriptions.parquet"
    # a repeated shard is deduplicated
    report = merge_shards(gt, shards + [shards[0]], merged)
    assert report["rows"] == len(expected_keys(data))
    assert pq.read_schema(merged).metadata[b"schema_version"] == b"1"
    assert pq.read_schema(merged).metadata[b"mllm_name"] == b"template"
    with pytest.raises(PriorsFileError, match="missing") as info:
        merge_shards(gt, shards[:2], tmp_path / "incomplete.parquet")
    assert "video_validation" in str(info.value)
    assert not (tmp_path / "incomplete.parquet").exists()
    assert (
        cli_main(
            ["merge", "--ground-truth", str(gt), "--shards", str(shards[0]), "--output", str(tmp_path / "x.parquet")]
        )
        == 2
    )


def test_parquet_readable_by_pandas_polars_duckdb(dataset, tmp_path):
    polars = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    import pandas as pd

    gt, _ = dataset
    out = tmp_path / "d.parquet"
    run_generate(GenerateConfig(ground_truth=gt, videos=None, output=out, backend="template"))
    frame = pd.read_parquet(out)
    assert tuple(frame.columns) == COLUMNS and str(frame["created_at"].dt.tz) == "UTC"
    pl_frame = polars.read_parquet(out)
    assert pl_frame.columns == list(COLUMNS) and pl_frame["frame_indices"].dtype == polars.List(polars.Int32)
    counts = duckdb.sql(
        f"SELECT kind, count(*) FROM read_parquet('{out}') WHERE error IS NULL GROUP BY kind ORDER BY kind"
    ).fetchall()
    assert counts == [("complete", len(frame) // 2), ("key", len(frame) // 2)]
