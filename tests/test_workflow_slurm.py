"""The SLURM profile, run against stand-in sbatch/squeue/sacct/scancel/srun/sinfo.

The stubs (tests/stubs/) run each submitted job locally and log every sbatch call, so the
test sees exactly what the slurm executor plugin would ask a real cluster for: GPU jobs
(prior generation with a model backend, training on CUDA) must request --gpus=1 on the
GPU partition, other jobs CPUs only.
"""

import json
import os
import re

import pytest
from helpers.workflow import REPO, fake_outputs, run, scratch_copy

STUBS = REPO / "tests" / "stubs"
SLURM = [
    "--workflow-profile",
    "workflow/profiles/slurm",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--jobs",
    "4",
    "--retries",
    "0",
]


def _env(tmp_path, submit_only=False):
    """Stand-ins first on PATH; `submit_only`: jobs are logged, not run (they end FAILED)."""
    env = {"PATH": f"{STUBS}{os.pathsep}{os.environ['PATH']}", "SLURM_STUB_DIR": str(tmp_path / "slurm")}
    return env | ({"SLURM_STUB_SUBMIT_ONLY": "1"} if submit_only else {})


def _calls(tmp_path):
    log = tmp_path / "slurm" / "sbatch.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _rule(call):
    comment = call[call.index("--comment") + 1]
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def _write_evaluable_run(root, *extra):
    """A one-video ground truth and each run's matching predictions, so `evaluate` can
    really run (before fake_outputs, which keeps the content of existing files).  The run
    folders are those of the settings `extra` gives (with a settings suffix: the device
    override differs from config/config.yaml): the configured experiment's and the untrained
    reference's, two seeds each."""
    gt = {"database": {"v1": {"subset": "test", "duration": 10.0, "annotations": [{"segment": [1, 3], "label": "A"}]}}}
    path = root / "data/demo/canonical/ground_truth.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(gt))
    planned = run(root, "-n", "-p", "results/demo_map.json", *extra).stdout
    run_dirs = sorted(set(re.findall(r"--run-dir (\S+) ", planned)))
    assert len(run_dirs) == 4, run_dirs
    for run_dir in run_dirs:
        pred = root / run_dir / "predictions.json"
        pred.parent.mkdir(parents=True)
        pred.write_text(json.dumps({"results": {"v1": [{"label": "A", "score": 0.9, "segment": [1, 3]}]}}))


@pytest.mark.slow
def test_slurm_profile_submits_cpu_and_gpu_jobs(tmp_path):
    root = scratch_copy(tmp_path / "wf")
    extra = ["--config", "mllm=qwen2.5-vl-7b", "datasets={demo: {training: {device: cuda}}}"]
    _write_evaluable_run(root, *extra)
    fake_outputs(root, "results/demo_map.json", *extra)

    # CPU jobs that really run through sbatch -> srun -> snakemake jobstep (evaluate); the
    # summary and its copy are local rules, never submitted.
    run(root, *SLURM, "--forcerun", "evaluate", "results/demo_map.json", *extra, env=_env(tmp_path), timeout=240)
    summary = json.loads((root / "results/demo_map.json").read_text())
    assert summary["mllm"] == "qwen2.5-vl-7b" and summary["map"]["0.5"]["mean"] == 1.0
    calls = _calls(tmp_path)
    assert [_rule(c) for c in calls] == ["evaluate"] * 4  # the experiment's and the reference's 2 seeds
    for call in calls:
        assert not any(a.startswith("--gpus") for a in call), call
        assert call[call.index("-p") + 1].strip("'") == "cpu"

    # GPU jobs: force the prior shards, then the training seeds.  What is checked here is the
    # submission itself: the stand-in logs each job and fails it unrun (the stage CLIs
    # would only meet the empty fake inputs and fail, after two Snakemake starts per job).
    for rule in ("generate_priors_shard", "train"):
        before = len(_calls(tmp_path))
        proc = run(
            root,
            *SLURM,
            "--keep-going",
            "--forcerun",
            rule,
            "--until",
            rule,
            "results/demo_map.json",
            *extra,
            env=_env(tmp_path, submit_only=True),
            check=False,
            timeout=240,
        )
        calls = _calls(tmp_path)[before:]
        expected = {"generate_priors_shard": 2, "train": 4}[rule]  # 2 shards / 2 seeds of 2 experiments
        assert [_rule(c) for c in calls] == [rule] * expected, proc.stdout[-3000:]
        for call in calls:
            assert "--gpus=1" in call, call
            assert call[call.index("-p") + 1].strip("'") == "gpu"

    # The same rule without a GPU (training on the CPU) goes to the CPU partition, no --gpus.
    cpu_extra = ["--config", "mllm=qwen2.5-vl-7b", "datasets={demo: {training: {device: cpu}}}"]
    before = len(_calls(tmp_path))
    proc = run(
        root,
        *SLURM,
        "--keep-going",
        "--forcerun",
        "train",
        "--until",
        "train",
        "results/demo_map.json",
        *cpu_extra,
        env=_env(tmp_path, submit_only=True),
        check=False,
        timeout=240,
    )
    calls = _calls(tmp_path)[before:]
    assert [_rule(c) for c in calls] == ["train"] * 4, proc.stdout[-3000:]
    for call in calls:
        assert not any(a.startswith("--gpus") for a in call), call
        assert call[call.index("-p") + 1].strip("'") == "cpu"
