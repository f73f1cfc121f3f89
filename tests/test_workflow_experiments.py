"""The experiments and ablations registries of config/config.yaml: each experiment x seed is
one job, inference-only experiments re-run another experiment's checkpoints, and an
ablation target gathers every arm into one summary with paired differences."""

import json
import re
import shlex

import pytest
from helpers.workflow import fake_outputs, planned_jobs, run, scratch_copy

STUDY = "results/thumos14-vd_ablation.json"
DEMO_STUDY = "results/demo_ablation.json"
ANET_MAP = "results/activitynet12-vd_map.json"
ANET_STUDY = "results/activitynet12-vd_ablation.json"


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("wf"))


def test_study_is_one_job_per_arm_and_seed(wf):
    """thumos14-vd's study: 8 + 3 + 3 + 8 + 3 + 3 trainings (the DELU arms; CO2-Net's are in the
    five-method study); two inference arms re-run delu-ksm-csr's 8 checkpoints; every run
    evaluated once."""
    jobs = planned_jobs(run(wf, "-n", STUDY).stdout)
    assert jobs["train"] == 28 and jobs["reinfer"] == 16 and jobs["evaluate"] == 44 and jobs["ablation"] == 1


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
    commands = [c for c in commands if "/delu-ksm-classname-" in c]  # not the untrained reference's
    assert len(commands) == 3  # the experiment's seeds, not the data set's two
    args = shlex.split(commands[0])
    assert args[args.index("--modules") + 1 : args.index("--modules") + 3] == ["ksm", "csr"]
    assert args[args.index("--iterations") + 1] == "600"  # the data set's, kept
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets == ["optimiser.lr=1e-4", "mllm4wtal.ksm_text=class_name"]
    # the data set's `set` differs from config/config.yaml: the runs get a folder of their own
    assert "--run-dir" in args and re.search(
        r"results/runs/demo/synthetic/delu-ksm-classname-[0-9a-f]{8}/seed", commands[0]
    )


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
    assert "  DELU +KSM+CSR: 0.1:0.7 avg mAP " in proc.stdout and "(8 seeds); vs DELU baseline: " in proc.stdout
    assert re.search(r"vs DELU baseline: [+-]\d+\.\d \[95% paired t interval [+-]\d+\.\d, [+-]\d+\.\d\]", proc.stdout)
    assert (
        "  the paper's method (MLLM4WTAL: a base method + KSM + CSR, scored by its localization head): " in proc.stdout
    )
    assert "): DELU +KSM+CSR; the other arms" in proc.stdout  # not the Table 5 or inference arms
    summary = json.loads((root / STUDY).read_text())
    assert summary["synthetic"] is True and summary["dataset"] == "thumos14-vd"
    arms = {arm["experiment"]: arm for arm in summary["arms"]}
    assert arms["delu-baseline"]["seeds"] == [str(s) for s in range(8)]
    paired = arms["delu-ksm-csr-merge"]["paired_difference"]["avg 0.1:0.7"]
    assert paired["seeds"] == [str(s) for s in range(8)] and len(paired["ci95"]) == 2
    assert paired["interval"] == "paired t"
    assert "GENERATED data" in (root / STUDY.replace(".json", ".md")).read_text()


def test_demo_study_measures_the_untrained_reference(tmp_path):
    """The README's demo study has the untrained model as a row (its runs: 0 iterations, no
    plug-ins, the demo's seeds), DELU's difference from it, and no interval from 2 seeds."""
    root = scratch_copy(tmp_path / "wf")
    out = run(root, "-n", "-p", DEMO_STUDY).stdout
    commands = [c for c in _train_commands(out) if "/untrained/" in c]
    assert len(commands) == 2
    args = shlex.split(commands[0])
    assert args[args.index("--iterations") + 1] == "0" and "--modules" not in args
    fake_outputs(root, DEMO_STUDY)
    (root / DEMO_STUDY).unlink()
    proc = run(root, "--cores", "1", DEMO_STUDY)
    assert "  untrained DELU (reference): 0.1:0.7 avg mAP " in proc.stdout
    assert "; vs untrained DELU (reference): " in proc.stdout
    assert "95% interval n/a (2 seeds: an interval needs >= 3)" in proc.stdout
    summary = json.loads((root / DEMO_STUDY).read_text())
    assert [arm["experiment"] for arm in summary["arms"]] == ["untrained", "delu-baseline", "default"]
    assert summary["arms"][1]["paired_difference"]["avg 0.1:0.7"]["ci95"] is None


def test_activitynet_chain_is_planned_with_the_family_settings(wf):
    """activitynet12-vd end to end: structure from the real annotations, the seeded subset,
    descriptions and text priors, DELU + KSM + CSR (3 seeds, shared by the map target and the
    study), the untrained reference and the DELU baseline (3 seeds each), the +KSM+CSR
    checkpoints re-inferred with the base's proposals and merged (diagnostics), scored at
    0.5:0.05:0.95 on the test role (ActivityNet's validation videos)."""
    out = run(wf, "-n", "-p", ANET_MAP, ANET_STUDY).stdout
    jobs = planned_jobs(out)
    assert {k: jobs[k] for k in ("ingest_structure", "synthesize", "text_priors", "ablation", "publish_map")} == {
        "ingest_structure": 1,
        "synthesize": 1,
        "text_priors": 1,
        "ablation": 1,
        "publish_map": 1,
    }
    assert jobs["train"] == 9 and jobs["reinfer"] == 6 and jobs["evaluate"] == 15
    lines = out.splitlines()
    assert any("wtal_data ingest --format wtalc --dataset activitynet12" in line for line in lines)
    assert any("--config config/synthetic_anet.yaml --size subset" in line for line in lines)
    assert all("--tiou 0.5:0.95:0.05" in line for line in lines if "python -m evaluation" in line)
    default = [shlex.split(c) for c in _train_commands(out) if "/activitynet12-vd/synthetic/default/" in c]
    assert len(default) == 3
    args = default[0]
    assert args[args.index("--iterations") + 1] == "4000" and args[args.index("--device") + 1] == "cpu"
    assert args[args.index("--modules") + 1 : args.index("--modules") + 3] == ["ksm", "csr"]
    assert args[args.index("--config") + 1] == "config/demo_training.yaml"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--set"] == ["data.max_seqlen=60", "mllm4wtal.lr=5e-4"]


def test_activitynet_study_names_the_papers_method(tmp_path):
    """The study's +KSM+CSR arm is the paper's method although its data set sets the branches'
    lr (a schedule knob, not a Table 5 text ablation), with paired intervals from 3 seeds."""
    root = scratch_copy(tmp_path / "wf")
    fake_outputs(root, ANET_STUDY)
    (root / ANET_STUDY).unlink()
    proc = run(root, "--cores", "1", ANET_STUDY)
    assert f"{ANET_STUDY}: ablation 'activitynet12-vd' on activitynet12-vd (GENERATED data" in proc.stdout
    assert "scored by its localization head): DELU +KSM+CSR; the other arms" in proc.stdout
    summary = json.loads((root / ANET_STUDY).read_text())
    experiments = ["untrained", "delu-baseline", "default", "default-base", "default-merge"]
    assert [arm["experiment"] for arm in summary["arms"]] == experiments
    assert all(arm["seeds"] == ["0", "1", "2"] for arm in summary["arms"])
    assert len(summary["arms"][2]["paired_difference"]["avg 0.1:0.7"]["ci95"]) == 2  # fake maps' key
