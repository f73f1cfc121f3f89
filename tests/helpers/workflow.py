"""Shared helpers for the workflow tests: a scratch copy of the workflow and a runner."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
DIRECTORY_OUTPUTS = ("/videos", "/timelines")
# snakemake-executor-plugin-slurm runs `scontrol show config` when Snakemake imports it, at
# every start.  On a machine with a Slurm client but no controller answering (e.g. after
# tests/slurm/start-local-cluster.sh installed one and the cluster stopped), that call waits
# 9 s for its timeout: most of each Snakemake start.  Runs that submit nothing to a real
# cluster point the client at an empty config instead, so it fails at once; the plugin then
# only words one help text differently.  Nothing else reads SLURM_CONF in these runs.
NO_SLURM_CLIENT = {"SLURM_CONF": os.devnull}


def scratch_copy(dest: Path) -> Path:
    """Copy what the workflow reads (code, config, envs, the packages' default files, committed
    annotations) to `dest`."""
    for name in ("workflow", "config", "envs", "wtal_training/configs"):
        shutil.copytree(REPO / name, dest / name)
    (dest / "prior_generation").mkdir(exist_ok=True)
    shutil.copyfile(REPO / "prior_generation" / "defaults.yaml", dest / "prior_generation" / "defaults.yaml")
    for ann in ("thumos14/raw/Thumos14reduced-Annotations", "activitynet12/raw/ActivityNet1.2-Annotations"):
        shutil.copytree(REPO / "data" / ann, dest / "data" / ann)
    synthetic = dest / "config" / "synthetic.yaml"
    if not synthetic.exists():  # owned by the data stage; only its presence matters here
        synthetic.write_text("# placeholder for the workflow tests\n")
    return dest


def run(cwd: Path, *args, env=None, check=True, timeout=300, real_slurm=False) -> subprocess.CompletedProcess:
    """Run snakemake in `cwd`; returns the completed process (stdout+stderr in .stdout).

    `real_slurm`: keep the machine's Slurm client configuration (a run on a real cluster)."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **({} if real_slurm else NO_SLURM_CLIENT), **(env or {}))
    proc = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return proc


def fake_outputs(cwd: Path, target: str, *extra) -> list[str]:
    """Create every output `target` needs as an empty file/dir, then record metadata
    with --touch, as if the whole chain had run with the current config and code."""
    summary = run(cwd, "--summary", target, *extra).stdout
    outputs = []
    for line in summary.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] != "output_file" and not line.startswith(("Using", "Building")):
            path = cwd / parts[0]
            if parts[0].endswith(DIRECTORY_OUTPUTS):
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix == ".json" and path.name == "eval_map.json":
                    path.write_text(json.dumps(fake_map(len(outputs))))
                else:
                    path.touch()
            outputs.append(parts[0])
    run(cwd, "--touch", "--cores", "1", target, *extra)
    return outputs


def fake_map(seed: int) -> dict:
    """An evaluation output with the keys `python -m evaluation` writes (mAP, average_mAP)."""
    return {
        "mAP": {f"{t / 10:g}": 0.5 - t / 50 + seed / 1000 for t in range(1, 8)},
        "average_mAP": {"0.1:0.7": 0.42 + seed / 1000},
    }


def planned_jobs(stdout: str) -> dict[str, int]:
    """Job counts per rule from a dry-run's 'Job stats' table ({} when nothing to do)."""
    if "Nothing to be done" in stdout:
        return {}
    table = stdout.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m or m.group(1) == "total":
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def real_video_ids(dataset: str = "thumos14", all_subsets: bool = False) -> list[str]:
    """The video ids of a real data set's committed annotations: its training videos, or all."""
    from wtal_data.ingest_common import get_preset
    from wtal_data.ingest_wtalc import WtalcFolder

    annotations = {
        "thumos14": "thumos14/raw/Thumos14reduced-Annotations",
        "activitynet12": "activitynet12/raw/ActivityNet1.2-Annotations",
    }[dataset]
    preset = get_preset(dataset)
    folder = WtalcFolder.read(REPO / "data" / annotations)
    return [
        v
        for i, v in enumerate(folder.video_ids)
        if all_subsets or preset.subset_map[folder.original_subset(i, v, preset)] == "train"
    ]


def touch_real_videos(root: Path, dataset: str = "thumos14", all_subsets: bool = False) -> list[str]:
    """Empty stand-ins for a real data set's videos (data/{dataset}/videos/<id>.mp4): enough for
    the workflow's check before the DAG runs, which checks that each file exists."""
    folder = root / "data" / dataset / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    ids = real_video_ids(dataset, all_subsets)
    for video in ids:
        (folder / f"{video}.mp4").touch()
    return ids
