"""The Snakemake workflow: lint, config validation, missing real data, caching rules.

Fast: every check is a dry run (or --touch) on a scratch copy of the workflow whose
outputs were created empty and recorded with `snakemake --touch`, so the stage CLIs
never run.  The caching tests use Snakemake's default rerun triggers (mtime, params,
input, code, software-env), through the CLI.
"""

import json
import re
import tomllib

import pytest
import yaml
from helpers.workflow import REPO, fake_outputs, planned_jobs, run, scratch_copy

DEMO = "results/demo_map.json"
PRIOR_CHAIN = {
    "generate_priors_shard": 2,
    "merge_priors": 1,
    "text_priors": 1,
    "train": 2,
    "evaluate": 2,
    "aggregate_map": 1,
}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """Scratch workflow whose demo chain is complete and up to date."""
    root = scratch_copy(tmp_path_factory.mktemp("wf"))
    fake_outputs(root, DEMO)
    return root


@pytest.fixture
def fresh(tmp_path):
    return scratch_copy(tmp_path)


def test_lint_is_clean():
    proc = run(REPO, "--lint")
    assert "Congratulations" in proc.stdout


def test_demo_dag_has_every_stage_and_shards(fresh):
    jobs = planned_jobs(run(fresh, "-n", DEMO).stdout)
    assert jobs == {"ingest_structure": 1, "synthesize_with_videos": 1, **PRIOR_CHAIN}


def test_nothing_reruns_without_cause(done):
    assert planned_jobs(run(done, "-n", DEMO).stdout) == {}


def test_switching_mllm_reruns_only_priors_and_after(done):
    out = run(done, "-n", DEMO, "--config", "mllm=template").stdout
    assert planned_jobs(out) == PRIOR_CHAIN
    assert "results/priors/demo/template/shards/shard-0-of-2.parquet" in out


def test_editing_a_prompt_reruns_that_chain(done, tmp_path):
    cfg = done / "config" / "config.yaml"
    original = cfg.read_text()
    try:
        prompt = "This video contains the actions of {cls}. Please describe the action of {cls} in great detail."
        cfg.write_text(original.replace("\npriors:\n", f"\npriors:\n  prompts: {{complete: '{prompt}'}}\n", 1))
        out = run(done, "-n", DEMO).stdout
        assert planned_jobs(out) == PRIOR_CHAIN
        assert re.search(r"params have changed since last execution:\s+generate_priors_shard", out)
    finally:
        cfg.write_text(original)


def test_one_mllm_overrides_a_generation_default(done):
    """mllms.<name>.priors reaches that MLLM's command line; unset knobs stay the CLI's defaults."""
    cfg = done / "config" / "config.yaml"
    original = cfg.read_text()
    entry = "  synthetic:\n    backend: synthetic\n    gpu: false\n"
    assert entry in original
    try:
        cfg.write_text(original.replace(entry, entry + "    priors: {batch_size: 3}\n", 1))
        out = run(done, "-n", "-p", DEMO).stdout
        assert planned_jobs(out) == PRIOR_CHAIN
        assert "--batch-size 3" in out and "--num-frames" not in out
    finally:
        cfg.write_text(original)


def test_training_knob_reruns_only_training_and_evaluation(done):
    out = run(done, "-n", DEMO, "--config", "training={method: co2net}").stdout
    assert planned_jobs(out) == {"train": 2, "evaluate": 2, "aggregate_map": 1}


def test_bad_config_value_names_the_field(fresh):
    proc = run(fresh, "-n", DEMO, "--config", "priors={shards: 0}", check=False)
    assert proc.returncode != 0 and "shards" in proc.stdout
    proc = run(fresh, "-n", DEMO, "--config", "mllm=no-such-mllm", check=False)
    assert proc.returncode != 0 and "config field 'mllm'" in proc.stdout


def test_missing_real_data_says_what_to_put_where(fresh):
    proc = run(fresh, "-n", "results/thumos14_map.json", check=False)
    assert proc.returncode != 0
    assert "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy" in proc.stdout
    assert "Put them at exactly these paths" in proc.stdout
    assert "synthesize" not in proc.stdout  # synthetic data never stands in


def test_real_chain_with_features_checks_videos(fresh):
    (fresh / "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy").touch()
    jobs = planned_jobs(run(fresh, "-n", "results/thumos14_map.json").stdout)
    assert jobs["ingest_real"] == 1 and jobs["check_videos"] == 1 and jobs["train"] == 3
    assert "synthesize" not in jobs and "synthesize_with_videos" not in jobs


def test_aggregate_and_report(done):
    """The summary script runs for real on evaluation-shaped files; the report builds."""
    target = done / DEMO
    target.unlink()
    run(done, "--cores", "1", DEMO)
    summary = json.loads(target.read_text())
    assert summary["dataset"] == "demo" and summary["mllm"] == "synthetic" and summary["synthetic"]
    assert summary["seeds"] == [0, 1] and set(summary["map"]) == {f"{t / 10:g}" for t in range(1, 8)}
    assert summary["map"]["0.1"]["std"] >= 0 and "0.1:0.7" in summary["average_map"]
    run(done, "--report", "report.html", DEMO)
    html = (done / "report.html").read_text()
    assert "demo_map.html" in html


def test_conda_envs_agree_with_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {re.match(r"[A-Za-z0-9_.\-]+", d).group(0).lower(): d for d in deps}
    covered = set()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        assert "python=3.11" in spec["dependencies"], env
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for req in pip:
            name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower()
            assert pinned.get(name) == req, f"{env.name}: {req!r} != pyproject {pinned.get(name)!r}"
            covered.add(name)
    assert covered == set(pinned), f"not in any env: {set(pinned) - covered}"
    # every env file is used by a rule and every rule names one (lint checks the latter)
    rules = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    for env in envs:
        assert f"envs/{env.name}" in rules, env.name


EXTRACT = ("--config", "datasets={thumos14: {features: extract}}")


def test_features_from_videos_name_the_weight_files(fresh):
    proc = run(fresh, "-n", "results/thumos14_map.json", check=False)
    assert "features to 'extract'" in proc.stdout and "data/weights/rgb_imagenet.pt" in proc.stdout
    proc = run(fresh, "-n", "results/thumos14_map.json", *EXTRACT, check=False)
    assert proc.returncode != 0
    for name in ("data/weights/rgb_imagenet.pt", "feature_extraction.flow_weights", "data/thumos14/videos"):
        assert name in proc.stdout, name
    assert "Thumos14reduced-I3D-JOINTFeatures.npy" not in proc.stdout  # not needed when extracting


def test_videos_and_weights_without_features_run_the_chain(fresh):
    for path in ("data/weights/rgb_imagenet.pt", "data/weights/flow_imagenet.pt"):
        (fresh / path).parent.mkdir(parents=True, exist_ok=True)
        (fresh / path).touch()
    (fresh / "data/thumos14/videos").mkdir(parents=True)
    proc = run(fresh, "-n", "-p", "results/thumos14_map.json", *EXTRACT)
    jobs = planned_jobs(proc.stdout)
    assert jobs["extract_features"] == 1 and jobs["ingest_real"] == 1 and jobs["train"] == 3
    assert "--output data/thumos14/features/i3d --rgb-weights data/weights/rgb_imagenet.pt" in proc.stdout
    assert "--format per-video" in proc.stdout and "--rgb-dir data/thumos14/features/i3d/rgb" in proc.stdout
