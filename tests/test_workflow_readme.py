"""README.md's command blocks run as written, in order, on a scratch copy of the repository.

The first block (the two fresh-machine commands: a new venv, install, demo / tests) is left
out: it needs a fresh clone and is what CI and the demo benchmark run.  Every other block
is run: stage CLIs for real, with two shortenings appended to the command as written (see
SHORTENINGS: training for 5 iterations, and thumos14-synth generated with narrower features,
since no later command reads it); Snakemake commands as dry runs (-n).  A Snakemake command
on a real data set must stop with the message saying which files to put where, as the README
promises (no real data here).
Install commands (`pip ...`) are not run: they change the environment (and the CPU-only one
needs an index this machine cannot reach).  What the "your own videos" section expects the
user to bring is made here first: random-weight I3D files with the real key names and one
rendered mp4 in my_videos/.  The checkpoints it names, which the workflow writes (the first
command, not run here), stand in just before the first command that names them
(STAND_INS): the demo's is the checkpoint the README's own `train` command wrote on the demo
data a block earlier (DELU + KSM + CSR, as the workflow's `default` experiment; 5 iterations),
THUMOS14's a 2048-d one trained for two iterations on generated features.  That the demo
path is what the first command writes is checked on its own, by a dry run (fast).
"""

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from helpers.workflow import NO_SLURM_CLIENT, REPO, scratch_copy

REAL_TARGETS = ("results/thumos14_map.json", "results/activitynet12_map.json")


def readme_blocks() -> list[list[str]]:
    """Commands of each code block (fenced or indented by 4 spaces), continuations joined."""
    blocks, current, fenced = [], None, False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            current = [] if fenced else None
            if fenced:
                blocks.append(current)
            continue
        if fenced:
            current.append(line)
        elif line.startswith("    ") and line.strip():
            if current is None:
                current = []
                blocks.append(current)
            current.append(line[4:])
        else:  # a blank or prose line ends an indented block
            current = None
    commands = []
    for block in blocks:
        text = "\n".join(block).replace("\\\n", " ")
        commands.append([" ".join(line.split()) for line in text.splitlines() if line.strip()])
    return commands


def test_readme_blocks_are_found():
    blocks = readme_blocks()
    assert blocks[0][0].startswith("python3 -m venv .venv") and len(blocks[0]) == 2
    assert any("wtal_training train" in c for block in blocks for c in block)
    # every shortening still meets its command (else the README run would take the full cost)
    assert {start for block in blocks for c in block for start in SHORTENINGS if c.startswith(start)} == set(
        SHORTENINGS
    )


# Options appended to a README command as written (argparse keeps the last value), by how
# the command starts: each makes it cheaper without changing which code paths it runs.
SHORTENINGS = {
    "python -m wtal_training train": ["--iterations", "5"],  # the README says 600
    # The README's generator config with 16-d instead of 1024-d features per modality: the
    # same 412 videos and 137k snippets, 17 MB instead of 1.1 GB (no later command reads them).
    "python -m wtal_data synth --size full": ["--config", "synthetic-narrow.yaml"],
}
NARROW_SYNTHETIC = "extends: config/synthetic.yaml\nfeatures: {dim_per_modality: 16}\n"


def _shortening(command: str) -> list[str]:
    return next((extra for start, extra in SHORTENINGS.items() if command.startswith(start)), [])


def _run(cwd, command, extra=(), timeout=900):
    env = dict(
        os.environ,
        **NO_SLURM_CLIENT,
        PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        OMP_NUM_THREADS="1",
    )
    args = [*shlex.split(command), *extra]
    if args[0] == "python":
        args[0] = sys.executable
    elif args[0] == "snakemake":
        args = [sys.executable, "-m", "snakemake", *args[1:], "-n"]
    return subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def _user_files(root):
    """The files a user brings to "Localize actions in your own videos"."""
    import torch

    from wtal_data.extraction.i3d import InceptionI3d
    from wtal_data.synthetic.render import render_video

    torch.manual_seed(0)
    for stream, channels in (("rgb", 3), ("flow", 2)):
        torch.save(InceptionI3d(channels).state_dict(), root / f"{stream}_imagenet.pt")
    events = [{"start": 0.0, "end": 2.0, "kind": "phase", "word": "jump"}]
    render_video({"duration": 1.0, "events": events}, root / "my_videos" / "clip.mp4", fps=8)


def _demo_checkpoint(root, path):
    """The README's `train` on data/demo/canonical (block "Use one stage alone") wrote it."""
    import shutil

    shutil.copy(root / "runs/delu-ksm-csr/seed0/checkpoint.safetensors", path)


def _thumos14_checkpoint(root, path):
    """A 2048-d checkpoint (the width of I3D RGB + flow), two iterations on generated features."""
    import shutil

    from helpers.toy_data import make_toy_dataset

    toy = make_toy_dataset(root / "toy", feature_dim=2048, num_train=6, num_test=3, length_range=(20, 30))
    proc = _run(
        root,
        f"python -m wtal_training train --data {toy} --method delu --iterations 2 --device cpu "
        "--seeds 0 --set data.max_seqlen=32 --output-dir toy_run",  # 32 snippets, not 2048-d convs over 320
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    shutil.copy(root / "toy_run/seed0/checkpoint.safetensors", path)


DEMO_CHECKPOINT = "results/runs/demo/synthetic/default/seed0/checkpoint.safetensors"
# Files a README command names that the workflow would have written: made just before the
# first command that names them (not earlier: the dry runs of the workflow must not see them).
STAND_INS = {
    DEMO_CHECKPOINT: _demo_checkpoint,
    "results/runs/thumos14/qwen2.5-vl-7b/default/seed0/checkpoint.safetensors": _thumos14_checkpoint,
}


def _make_stand_ins(root, command):
    for name, make in STAND_INS.items():
        path = root / name
        if name in command and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            make(root, path)


def test_readme_names_the_checkpoint_and_data_the_first_command_writes(tmp_path):
    """The "your own videos" section starts from the demo's checkpoint and data: the paths it
    names are outputs of the first command's Snakemake targets (a dry run plans them)."""
    blocks = readme_blocks()
    section = [c for block in blocks for c in block if DEMO_CHECKPOINT in c or "wtal_data export" in c]
    assert len(section) == 2 and "--data data/demo/canonical" in section[0], section
    assert all(any(name in c for block in blocks for c in block) for name in STAND_INS)  # no stale stand-in
    first = blocks[0][0]
    targets = shlex.split(first[first.index("snakemake") :])[3:]
    assert targets == ["results/demo_map.json", "results/demo_ablation.json"], first
    root = scratch_copy(tmp_path)
    proc = _run(root, " ".join(["snakemake", "--cores", "2", *targets]))
    assert proc.returncode == 0, proc.stdout[-3000:]
    planned = proc.stdout
    assert re.search(rf"output: [^\n]*{re.escape(DEMO_CHECKPOINT)}", planned), planned[-3000:]
    assert re.search(r"output: [^\n]*data/demo/canonical/features\.npy", planned), planned[-3000:]


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    root = scratch_copy(tmp_path)
    (root / "synthetic-narrow.yaml").write_text(NARROW_SYNTHETIC)
    _user_files(root)
    for block in readme_blocks()[1:]:
        for command in block:
            if command.startswith("pip "):
                continue
            _make_stand_ins(root, command)
            proc = _run(root, command, _shortening(command))
            if command.startswith("snakemake") and any(t in command for t in REAL_TARGETS):
                assert proc.returncode != 0 and "Put them at exactly these paths" in proc.stdout, proc.stdout[-3000:]
            else:
                assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}"
    assert (root / "map.json").exists() and (root / "runs/delu-ksm-csr/seed1/predictions.json").exists()
    assert re.search(r'"mAP"', (root / "map.json").read_text())
    # "your own videos": one exported demo video, then the extracted mp4
    assert np.load(root / "my_video.npy").shape[1] == 256
    assert list(json.loads((root / "detections.json").read_text())["results"]) == ["my_video"]
    assert {p.name for p in (root / "timelines").glob("*.png")} == {"my_video.png", "overview.png"}
    assert list(json.loads((root / "my_detections.json").read_text())["results"]) == ["clip"]
    assert {p.name for p in (root / "my_timelines").glob("*.png")} == {"clip.png", "overview.png"}
