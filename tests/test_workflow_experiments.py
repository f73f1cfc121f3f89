"""The experiments and ablations registries of config/config.yaml: each experiment x seed is
one job, inference-only experiments re-run another experiment's checkpoints, and an
ablation target gathers every arm into one summary with paired differences."""

import json
import shlex

import pytest
from helpers.workflow import fake_outputs, planned_jobs, run, scratch_copy

STUDY = "results/thumos14-vd_ablation.json"


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("wf"))


def test_study_is_one_job_per_arm_and_seed(wf):
    """thumos14-vd's study: 5 + 3 + 3 + 5 + 3 + 3 (DELU arms) + 3 + 3 (CO2-Net) trainings;
    two inference arms re-run delu-ksm-csr's 5 checkpoints; every run evaluated once."""
    jobs = planned_jobs(run(wf, "-n", STUDY).stdout)
    assert jobs["train"] == 28 and jobs["reinfer"] == 10 and jobs["evaluate"] == 38 and jobs["ablation"] == 1


def _train_commands(stdout):
    prefix = "Shell command: "
    return [
        line.removeprefix(prefix)
        for line in stdout.splitlines()
        if line.startswith(prefix + "python -m wtal_training train")
    ]


def test_experiment_layers_on_the_data_sets_training(wf):
    """Top-level < data set < experiment, key by key; `set` lists concatenated in that order."""
    extra = ["--config", "datasets={demo: {training: {set: [optimiser.lr=1e-4]}}}", "experiment=delu-ksm-classname"]
    commands = _train_commands(run(wf, "-n", "-p", "results/demo_map.json", *extra).stdout)
    assert len(commands) == 3  # the experiment's seeds, not the data set's two
    args = shlex.split(commands[0])
    assert args[args.index("--modules") + 1 : args.index("--modules") + 3] == ["ksm", "csr"]
    assert args[args.index("--iterations") + 1] == "600"  # the data set's, kept
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets == ["optimiser.lr=1e-4", "mllm4wtal.ksm_text=class_name"]
    assert "--run-dir" in args and "results/runs/demo/synthetic/delu-ksm-classname/seed" in commands[0]


@pytest.mark.parametrize(
    "override, field",
    [
        ("experiment=nope", "config field 'experiment'"),
        ("experiments={x: {inference: {of: nope, proposal_source: base}}}", "experiments.x.inference.of"),
        (
            "ablations={s: {dataset: demo, arms: [{name: a, experiment: default, reference: delu-ksm}]}}",
            "ablations.s.arms[0].reference",
        ),
        ("ablations={s: {dataset: nope, arms: [{name: a, experiment: default}]}}", "ablations.s.dataset"),
    ],
)
def test_bad_registry_entries_name_the_field(wf, override, field):
    proc = run(wf, "-n", "results/demo_map.json", "--config", override, check=False)
    assert proc.returncode != 0 and field in proc.stdout, proc.stdout[-2000:]


def test_ablation_summary_from_the_evaluations(tmp_path):
    """With every run recorded as done, the ablation rule itself runs and writes both tables."""
    root = scratch_copy(tmp_path / "wf")
    fake_outputs(root, STUDY)
    (root / STUDY).unlink()
    proc = run(root, "--cores", "1", STUDY)
    assert planned_jobs(proc.stdout) == {"ablation": 1}
    # the finished run prints each arm's headline (Snakefile onsuccess)
    assert f"{STUDY}: ablation 'thumos14-vd' on thumos14-vd (GENERATED data" in proc.stdout
    assert "  DELU +KSM+CSR: 0.1:0.7 avg mAP " in proc.stdout and "vs reference" in proc.stdout
    summary = json.loads((root / STUDY).read_text())
    assert summary["synthetic"] is True and summary["dataset"] == "thumos14-vd"
    arms = {arm["experiment"]: arm for arm in summary["arms"]}
    assert arms["delu-baseline"]["seeds"] == ["0", "1", "2", "3", "4"]
    paired = arms["delu-ksm-csr-merge"]["paired_difference"]["avg 0.1:0.7"]
    assert paired["seeds"] == ["0", "1", "2", "3", "4"] and len(paired["ci95"]) == 2
    assert "GENERATED data" in (root / STUDY.replace(".json", ".md")).read_text()
