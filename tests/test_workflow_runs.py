"""Run folders keyed by the effective training settings (workflow/rules/common.smk: run_name).

Runs of the settings config/config.yaml gives an experiment live in
results/runs/{dataset}/{mllm}/{experiment}/; settings changed with --config (or a
--configfile) go to {experiment}-{8 hex digits of the settings}/, and so do their summaries.
An override therefore never overwrites the committed settings' runs, and switching back
reruns nothing but the copy results/{dataset}_map.json.  Dry runs and --touch on a scratch
copy: the stage CLIs never run.
"""

import re

import pytest
from helpers.workflow import fake_outputs, planned_jobs, run, scratch_copy

DEMO = "results/demo_map.json"
RUNS = "results/runs/demo/synthetic"
SHORTER = ("--config", "datasets={demo: {training: {iterations: 300}}}")


def _run_dirs(stdout):
    return sorted(set(re.findall(r"--run-dir (\S+)/seed\d+ ", stdout)))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """The demo chain recorded as done with config/config.yaml's settings."""
    root = scratch_copy(tmp_path_factory.mktemp("wf"))
    fake_outputs(root, DEMO)
    return root


def test_committed_settings_use_the_plain_names(tmp_path):
    out = run(scratch_copy(tmp_path), "-n", "-p", DEMO).stdout
    assert _run_dirs(out) == [f"{RUNS}/default", f"{RUNS}/untrained"]


def test_changed_settings_train_into_their_own_folder(done):
    """--config changes the demo's iterations: the default experiment trains into
    default-<hash>/ and leaves default/ alone; the untrained reference (its own iterations
    win) keeps its folder and is not retrained."""
    out = run(done, "-n", "-p", DEMO, *SHORTER).stdout
    dirs = _run_dirs(out)
    assert len(dirs) == 1 and re.fullmatch(rf"{RUNS}/default-[0-9a-f]{{8}}", dirs[0]), dirs
    assert planned_jobs(out) == {"train": 2, "evaluate": 2, "aggregate_map": 1, "publish_map": 1}
    assert out.count("--iterations 300 ") == 2
    summary = dirs[0].replace("results/runs", "results/summaries") + "_map.json"
    assert f"input: {summary}, results/summaries/demo/synthetic/untrained_map.json" in out
    # the same settings give the same folder; other settings another one
    assert _run_dirs(run(done, "-n", "-p", DEMO, *SHORTER).stdout) == dirs
    other = _run_dirs(run(done, "-n", "-p", DEMO, "--config", "datasets={demo: {training: {iterations: 400}}}").stdout)
    assert len(other) == 1 and other != dirs


def test_switching_settings_and_back_reruns_nothing(tmp_path):
    """The issue's case: a run with changed settings, then back to the committed ones (and
    again): nothing retrains, only results/demo_map.json is copied again."""
    root = scratch_copy(tmp_path)
    fake_outputs(root, DEMO)
    fake_outputs(root, DEMO, *SHORTER)  # as if the 300-iteration runs had run
    committed = root / RUNS / "default/seed0/checkpoint.safetensors"
    stamp = committed.stat().st_mtime_ns
    for extra in ([], SHORTER, [], SHORTER, []):
        assert planned_jobs(run(root, "--cores", "1", DEMO, *extra).stdout) in ({}, {"publish_map": 1})
    assert planned_jobs(run(root, "-n", DEMO).stdout) == {}
    assert committed.stat().st_mtime_ns == stamp
    assert len(list((root / "results/summaries/demo/synthetic").glob("default-*_map.json"))) == 1


def test_seeds_are_not_part_of_the_folder(done):
    """Fewer seeds are the same runs: nothing retrains, the summaries are redone."""
    out = run(done, "-n", "-p", DEMO, "--config", "datasets={demo: {training: {seeds: [0]}}}").stdout
    assert planned_jobs(out) == {"aggregate_map": 2, "publish_map": 1}


def test_a_configfile_is_a_variant_too(done):
    """Settings from --configfile differ from config/config.yaml's: their own folder."""
    (done / "shorter.yaml").write_text("datasets:\n  demo:\n    training:\n      iterations: 300\n")
    out = run(done, "-n", "-p", DEMO, "--configfile", "shorter.yaml").stdout
    assert _run_dirs(out) == _run_dirs(run(done, "-n", "-p", DEMO, *SHORTER).stdout)


def test_editing_config_yaml_reruns_the_plain_folder(done):
    """config/config.yaml defines what the plain names hold: an edit there reruns in place."""
    cfg = done / "config" / "config.yaml"
    original = cfg.read_text()
    try:
        cfg.write_text(
            original.replace("      iterations: 600\n      seeds: [0, 1]", "      iterations: 300\n      seeds: [0, 1]")
        )
        assert cfg.read_text() != original
        out = run(done, "-n", "-p", DEMO).stdout
        assert _run_dirs(out) == [f"{RUNS}/default"] and "--iterations 300 " in out
        assert re.search(r"params have changed since last execution:\s+train", out)
    finally:
        cfg.write_text(original)


def test_a_folder_of_other_settings_is_refused(done):
    """Asking for the plain folder while --config changes its settings is an error naming the
    folder that holds them, not a retraining of the committed runs with other settings."""
    proc = run(done, "-n", f"{RUNS}/default/seed0/eval_map.json", *SHORTER, check=False)
    assert proc.returncode != 0
    assert re.search(
        r"run folder 'default' of data set 'demo' does not hold experiment 'default' with the current\s+settings: those run in 'default-[0-9a-f]{8}'",
        proc.stdout,
    )


def test_inference_only_experiments_follow_their_source(tmp_path):
    """delu-ksm-csr-merge re-infers delu-ksm-csr's checkpoints: when those move to a hashed
    folder, so do the re-inferences, reading the moved checkpoints."""
    root = scratch_copy(tmp_path)
    target = "results/summaries/demo/synthetic/delu-ksm-csr-merge_map.json"
    extra = ("--config", "experiments={delu-ksm-csr: {training: {iterations: 50}}}")
    assert "delu-ksm-csr-merge/seed0" in run(root, "-n", "-p", target).stdout
    proc = run(root, "-n", "-p", target, *extra, check=False)
    assert proc.returncode != 0 and "does not hold experiment 'delu-ksm-csr-merge'" in proc.stdout
    merged = re.search(r"delu-ksm-csr-merge-[0-9a-f]{8}", proc.stdout).group(0)
    out = run(root, "-n", "-p", f"results/summaries/demo/synthetic/{merged}_map.json", *extra).stdout
    source = re.search(r"--checkpoint (results/runs/demo/synthetic/(\S+)/seed0/checkpoint.safetensors)", out)
    assert re.fullmatch(r"delu-ksm-csr-[0-9a-f]{8}", source.group(2)), source.group(0)
    assert f"--run-dir {RUNS}/{source.group(2)}/seed0" in out


def test_names_that_look_like_variants_are_refused(tmp_path):
    proc = run(scratch_copy(tmp_path), "-n", DEMO, "--config", "experiments={x-0123abcd: {}}", check=False)
    assert proc.returncode != 0 and "config field 'experiments.x-0123abcd'" in proc.stdout


def test_a_top_level_override_shadowed_by_the_data_set_says_so(tmp_path):
    """The demo sets its own iterations: `training={iterations: 300}` changes nothing there,
    and the run says so (and which override would)."""
    out = run(scratch_copy(tmp_path), "-n", "-p", DEMO, "--config", "training={iterations: 300}").stdout
    note = re.search(r"--config training.iterations does not apply to data set\(s\) ([^:]+):", out)
    assert note, out
    assert {"thumos14-vd", "activitynet12-vd", "demo"} <= set(note.group(1).split(", "))
    assert "--iterations 300 " not in out
