"""The Snakemake workflow: lint, config validation and overrides, missing or bad real
data, unknown targets, logs, caching rules, the printed headlines.

Fast: every check is a dry run (or --touch) on a scratch copy of the workflow whose
outputs were created empty and recorded with `snakemake --touch`, so the stage CLIs
never run.  The caching tests use Snakemake's default rerun triggers (mtime, params,
input, code, software-env), through the CLI.
"""

import json
import re
import shlex
import tomllib

import pytest
import yaml
from helpers.workflow import REPO, fake_outputs, planned_jobs, real_video_ids, run, scratch_copy, touch_real_videos

from prior_generation.settings import DEFAULTS as GENERATION_DEFAULTS

DEMO = "results/demo_map.json"
# What new descriptions rerun: the priors and the configured experiment's two seeds.
PRIOR_CHAIN = {
    "generate_priors_shard": 2,
    "merge_priors": 1,
    "text_priors": 1,
    "train": 2,
    "evaluate": 2,
    "aggregate_map": 1,
    "publish_map": 1,
}
# A new MLLM: that chain, plus the untrained reference's two seeds (config
# `reference_experiment`), whose runs live under the MLLM's path too although they read no priors.
NEW_MLLM_CHAIN = PRIOR_CHAIN | {"train": 4, "evaluate": 4, "aggregate_map": 2}
# A change to what both DELU experiments train (the method, a DELU default): both rerun.
BOTH_TRAININGS = {"train": 4, "evaluate": 4, "aggregate_map": 2, "publish_map": 1}
PLUGIN_TRAININGS = {"train": 2, "evaluate": 2, "aggregate_map": 1, "publish_map": 1}
SYNTHETIC_SUMMARY = "results/summaries/demo/synthetic/default_map.json"


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
    assert jobs == {"ingest_structure": 1, "synthesize_with_videos": 1, **NEW_MLLM_CHAIN}


def test_nothing_reruns_without_cause(done):
    assert planned_jobs(run(done, "-n", DEMO).stdout) == {}


def test_switching_mllm_reruns_only_priors_and_after(done):
    out = run(done, "-n", DEMO, "--config", "mllm=template").stdout
    assert planned_jobs(out) == NEW_MLLM_CHAIN
    assert "results/priors/demo/template/shards/shard-1-of-2.parquet" in out  # scattergather items


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
    """mllms.<name>.priors reaches that MLLM's command line; unset knobs are
    prior_generation/settings.py's defaults, written out."""
    cfg = done / "config" / "config.yaml"
    original = cfg.read_text()
    entry = "  synthetic:\n    backend: synthetic\n    gpu: false\n"
    assert entry in original
    try:
        cfg.write_text(original.replace(entry, entry + "    priors: {batch_size: 3}\n", 1))
        out = run(done, "-n", "-p", DEMO).stdout
        assert planned_jobs(out) == PRIOR_CHAIN
        assert "--batch-size 3" in out and f"--num-frames {GENERATION_DEFAULTS.num_frames} " in out
    finally:
        cfg.write_text(original)


def test_training_knob_reruns_only_training_and_evaluation(done):
    """The configured experiment and the untrained reference train the configured method."""
    out = run(done, "-n", DEMO, "--config", "training={method: co2net}").stdout
    assert planned_jobs(out) == BOTH_TRAININGS


def test_changing_a_package_default_reruns_only_what_it_changes(tmp_path):
    """The stages' own defaults are rerun triggers too, read from their YAML files (the
    workflow imports no package code): a generation default of prior_generation/defaults.yaml
    reruns the MLLM chain; a DELU default of defaults.yaml reruns the DELU trainings; a plug-in
    default only the trainings with modules; a CO2-Net default none of them."""
    root = scratch_copy(tmp_path)  # it carries the packages' default files, and no package code
    assert not [p for p in root.rglob("*.py") if p.relative_to(root).parts[0] != "workflow"]
    fake_outputs(root, DEMO)
    assert planned_jobs(run(root, "-n", DEMO).stdout) == {}

    def edited(path, old, new):
        text = path.read_text()
        assert text.count(old) == 1, old
        path.write_text(text.replace(old, new))
        try:
            return run(root, "-n", DEMO).stdout
        finally:
            path.write_text(text)

    settings = root / "prior_generation" / "defaults.yaml"
    out = edited(settings, "num_frames: 16 #", "num_frames: 8 #")
    assert planned_jobs(out) == PRIOR_CHAIN
    assert re.search(r"params have changed since last execution:\s+generate_priors_shard", out)
    defaults = root / "wtal_training" / "configs" / "defaults.yaml"
    out = edited(
        defaults,
        "delu: {uct_guide_order: rank, edl_form: exp_log}\n    test: {min_proposal_length: 1.0}",
        "delu: {uct_guide_order: rank, edl_form: exp_log}\n    test: {min_proposal_length: 2.0}",
    )
    assert planned_jobs(out) == BOTH_TRAININGS  # DELU + KSM + CSR and the untrained DELU
    out = edited(defaults, "    lambda1: 1.5\n", "    lambda1: 2.5\n")
    assert planned_jobs(out) == PLUGIN_TRAININGS  # DELU + KSM + CSR only: the untrained DELU has no modules
    out = edited(defaults, "test: {num_thresholds: 10}\n  # DELU's", "test: {num_thresholds: 12}\n  # DELU's")
    assert planned_jobs(out) == {}


def test_bad_config_value_names_the_field(fresh):
    proc = run(fresh, "-n", DEMO, "--config", "priors={shards: 0}", check=False)
    assert proc.returncode != 0 and "shards" in proc.stdout
    proc = run(fresh, "-n", DEMO, "--config", "mllm=no-such-mllm", check=False)
    assert proc.returncode != 0 and "config field 'mllm'" in proc.stdout


def _error(stdout):
    """The WorkflowError text of a failed dry run (Snakemake indents it)."""
    return " ".join(line.strip() for line in stdout.splitlines())


def test_missing_real_data_says_what_to_put_where(fresh):
    """Features and videos missing: both named in one error, before any job (a dry run)."""
    proc = run(fresh, "-n", "results/thumos14_map.json", check=False)
    assert proc.returncode != 0
    assert "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy" in proc.stdout
    assert "Put them at exactly these paths" in proc.stdout
    assert "2 inputs missing (all of them, checked before any job runs)" in proc.stdout
    text = _error(proc.stdout)
    assert "data/thumos14/videos/ the videos folder: <video_id>.mp4 for each of the training videos" in text
    assert "(200 videos, e.g. video_validation_0000051.mp4)" in text
    assert "synthesize" not in proc.stdout  # synthetic data never stands in


def test_missing_inputs_are_listed_together_file_by_file(fresh):
    """Annotations, features and each missing training video in one error; the message names
    the first 20 videos and a file under logs/ lists every missing path."""
    import shutil

    annotations = fresh / "data/thumos14/raw/Thumos14reduced-Annotations"
    ids = real_video_ids("thumos14")
    videos = fresh / "data/thumos14/videos"
    videos.mkdir(parents=True)
    for video in ids[:150]:
        (videos / f"{video}.mp4").touch()
    proc = run(fresh, "-n", "results/thumos14_map.json", check=False)
    assert proc.returncode != 0
    assert "51 inputs missing" in proc.stdout and "50 of the 200 training videos" in proc.stdout
    assert f"data/thumos14/videos/{ids[150]}.mp4" in proc.stdout and f"{ids[149]}.mp4" not in proc.stdout
    assert "... and 30 more: every missing path is in logs/data/thumos14/missing_inputs.txt" in proc.stdout
    listed = (fresh / "logs/data/thumos14/missing_inputs.txt").read_text().splitlines()
    assert listed == ["data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy"] + [
        f"data/thumos14/videos/{v}.mp4" for v in ids[150:]
    ]
    # without annotations the videos cannot be listed one by one, but the folder check and the
    # annotation folder itself are still reported together with the features
    shutil.rmtree(annotations)
    shutil.rmtree(videos)
    proc = run(fresh, "-n", "results/thumos14_map.json", check=False)
    text = _error(proc.stdout)
    assert proc.returncode != 0 and "3 inputs missing" in proc.stdout
    for path in ("data/thumos14/raw/Thumos14reduced-Annotations", "Thumos14reduced-I3D-JOINTFeatures.npy"):
        assert path in text, path
    assert "data/thumos14/videos/ the videos folder" in text


def test_videos_are_not_needed_once_checked(fresh):
    """After the video check has passed (its record exists), deleting the videos does not
    block the DAG: prior generation is done with them."""
    (fresh / "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy").touch()
    record = fresh / "results/checks/thumos14/videos.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    jobs = planned_jobs(run(fresh, "-n", "results/thumos14_map.json").stdout)
    assert jobs["ingest_real"] == 1 and jobs["train"] == 6  # default and the untrained reference, 3 seeds each


def test_real_chain_with_features_checks_videos(fresh):
    (fresh / "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy").touch()
    touch_real_videos(fresh)
    jobs = planned_jobs(run(fresh, "-n", "results/thumos14_map.json").stdout)
    assert jobs["ingest_real"] == 1 and jobs["check_videos"] == 1 and jobs["train"] == 6
    assert "synthesize" not in jobs and "synthesize_with_videos" not in jobs


def test_aggregate_and_report(done):
    """The summary script runs for real on evaluation outputs; the report builds; the finished
    run prints the configured experiment, the untrained reference beside it, and which one is
    the paper's method."""
    (done / SYNTHETIC_SUMMARY).unlink()
    (done / SYNTHETIC_SUMMARY.replace("default", "untrained")).unlink()
    (done / DEMO).unlink()
    proc = run(done, "--cores", "1", DEMO)
    printed = proc.stdout[proc.stdout.index(f"{DEMO}: demo (GENERATED data") :]
    lines = printed.splitlines()
    assert lines[0].endswith("MLLM synthetic: avg mAP@0.1:0.7 on the test videos, mean ± sample std over seeds")
    assert re.match(r"  experiment default \(DELU \+ KSM \+ CSR\): \d+\.\d ± \d+\.\d % over 2 seeds$", lines[1])
    assert re.match(
        r"  reference untrained \(DELU alone, not trained: the initial weights of each seed, the floor to clear\): "
        r"\d+\.\d ± \d+\.\d % over 2 seeds$",
        lines[2],
    )
    assert lines[3] == (
        "  experiment default is the paper's method (MLLM4WTAL: a base method + KSM + CSR, scored by its localization head)"
    )
    summary = json.loads((done / SYNTHETIC_SUMMARY).read_text())
    assert summary["dataset"] == "demo" and summary["mllm"] == "synthetic" and summary["synthetic"]
    assert summary["seeds"] == [0, 1] and set(summary["map"]) == {f"{t / 10:g}" for t in range(1, 8)}
    seeds = [
        json.loads(p.read_text()) for p in sorted(done.glob("results/runs/demo/synthetic/default/seed*/eval_map.json"))
    ]
    a, b = (s["mAP"]["0.1"] for s in seeds)
    assert summary["map"]["0.1"]["mean"] == pytest.approx((a + b) / 2)
    assert summary["map"]["0.1"]["std"] == pytest.approx(abs(a - b) / 2**0.5)  # sample std (n - 1)
    a, b = (s["average_mAP"]["0.1:0.7"] for s in seeds)
    assert summary["average_map"]["0.1:0.7"]["mean"] == pytest.approx((a + b) / 2)
    assert json.loads((done / DEMO).read_text()) == summary  # the configured summary, copied
    run(done, "--report", "report.html", DEMO)
    html = (done / "report.html").read_text()
    assert "default_map.html" in html


def test_aggregate_reads_the_documented_keys(done, tmp_path):
    """An evaluation output without mAP / average_mAP fails with the file named, in the log."""
    seed0 = done / "results/runs/demo/synthetic/default/seed0/eval_map.json"
    original = seed0.read_text()
    try:
        seed0.write_text(json.dumps({"table": json.loads(original)["mAP"]}))  # right shape, wrong key
        proc = run(done, "--cores", "1", "--forcerun", "aggregate_map", DEMO, check=False)
        assert proc.returncode != 0
        log = (done / "logs/aggregate/demo/synthetic/default.log").read_text()
        assert str(seed0.relative_to(done)) in log and "mAP / average_mAP" in log
    finally:
        seed0.write_text(original)
        run(done, "--touch", "--cores", "1", DEMO)


def test_headline_of_an_experiment_that_is_not_the_papers_method(done):
    """experiment=delu-baseline: its own figure, the untrained reference, and a line saying it
    is not the paper's method."""
    extra = ["--config", "experiment=delu-baseline"]
    fake_outputs(done, DEMO, *extra)
    for summary in ("delu-baseline", "untrained"):  # recomputed from the (fake) evaluations
        (done / SYNTHETIC_SUMMARY.replace("default", summary)).unlink()
    (done / DEMO).unlink()
    try:
        out = run(done, "--cores", "1", DEMO, *extra).stdout
        assert "  experiment delu-baseline (DELU alone): " in out and "over 8 seeds" in out
        assert "  reference untrained (DELU alone, not trained: " in out
        assert "  experiment delu-baseline is not the paper's method" in out
    finally:
        (done / DEMO).unlink()
        run(done, "--touch", "--cores", "1", DEMO)


def test_switching_mllm_and_back_keeps_both_summaries(tmp_path):
    """Each MLLM has its own summary; the documented file is the configured one's copy,
    so a switch and a switch back rerun none of the chain (only that copy)."""
    root = scratch_copy(tmp_path)
    fake_outputs(root, DEMO)
    template = ["--config", "mllm=template"]
    fake_outputs(root, DEMO, *template)  # as if the template chain had run
    synthetic_summary = (root / SYNTHETIC_SUMMARY).stat().st_mtime_ns
    for extra in ([], template, []):
        # A real run prints the jobs it runs, all those the target needed: at most the copy.
        assert planned_jobs(run(root, "--cores", "1", DEMO, *extra).stdout) in ({}, {"publish_map": 1})
    assert planned_jobs(run(root, "-n", DEMO).stdout) == {}
    assert (root / SYNTHETIC_SUMMARY).stat().st_mtime_ns == synthetic_summary
    assert (root / "results/summaries/demo/template/default_map.json").exists()


def _documented_overrides():
    """The `snakemake ... --config ...` command lines of config/config.yaml's comments."""
    lines = (REPO / "config" / "config.yaml").read_text().splitlines()
    commands = [
        line.lstrip("# ").split("  #")[0].strip() for line in lines if re.match(r"#\s+snakemake .*--config", line)
    ]
    assert commands, "config/config.yaml documents no --config override"
    return commands


# What each documented override must change in the dry run of its command.
OVERRIDE_EFFECTS = {
    "mllm=template": lambda out, jobs: "results/priors/demo/template/descriptions.parquet" in out,
    "training={seeds: [0]}": lambda out, jobs: jobs["train"] == 2,  # the experiment's and the reference's seed 0
    "priors={shards: 3}": lambda out, jobs: jobs["generate_priors_shard"] == 3,
    "datasets={demo: {training: {iterations: 500}}}": lambda out, jobs: out.count("--iterations 500 ") == 2,
    "training={iterations: 500}": lambda out, jobs: out.count("--iterations 500 ") == 3,
}


@pytest.mark.parametrize("command", _documented_overrides())
def test_documented_config_overrides_work_as_written(fresh, command):
    """Every override config/config.yaml shows runs (dry) and does what it says; nested
    values are YAML (Snakemake alone would hand '500' over as a string)."""
    args = shlex.split(command)
    assert args[0] == "snakemake"
    value = args[args.index("--config") + 1]
    assert value in OVERRIDE_EFFECTS, f"add the expected effect of {value!r} to OVERRIDE_EFFECTS"
    out = run(fresh, *args[1:], "-n", "--printshellcmds").stdout
    assert OVERRIDE_EFFECTS[value](out, planned_jobs(out)), out[-3000:]


def test_quoted_nested_value_stays_a_string(fresh):
    proc = run(fresh, "-n", DEMO, "--config", 'training={iterations: "500"}', check=False)
    assert proc.returncode != 0 and "'500' is not of type 'integer'" in proc.stdout


def test_schema_allows_only_what_the_rules_do(fresh):
    proc = run(fresh, "-n", DEMO, "--config", "datasets={thumos14: {format: um}}", check=False)
    assert proc.returncode != 0 and "'um' is not one of ['wtalc']" in proc.stdout
    proc = run(fresh, "-n", DEMO, "--config", "training={modules: [ksm, dpid]}", check=False)
    assert proc.returncode != 0 and "'dpid' is not one of ['ksm', 'csr']" in proc.stdout


def test_unknown_dataset_target_lists_the_valid_names(fresh):
    proc = run(fresh, "-n", "results/nosuch_map.json", check=False)
    assert proc.returncode != 0 and "No rule to produce" not in proc.stdout
    assert "'nosuch' is not a data set" in proc.stdout
    for name in ("demo", "thumos14", "thumos14-synth", "activitynet12"):
        assert f"results/{name}_map.json" in proc.stdout


def test_every_shell_log_captures_stderr(fresh):
    """A failed job's log must hold the error: each shell command sends stderr to its log."""
    (fresh / "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy").touch()
    touch_real_videos(fresh)
    out = run(fresh, "-n", "--printshellcmds", DEMO, "results/thumos14_map.json").stdout
    commands = re.findall(r"^Shell command: (python -m .*)$", out, flags=re.M)
    assert len(commands) >= 10
    for command in commands:
        log = re.search(r"(?:--log|>) (logs/\S+)", command)
        assert log and (f"2>> {log.group(1)}" in command or command.endswith(f"> {log.group(1)} 2>&1")), command


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
    ids = touch_real_videos(fresh, all_subsets=True)  # extraction reads every video, test ones too
    (fresh / f"data/thumos14/videos/{ids[-1]}.mp4").unlink()
    proc = run(fresh, "-n", "results/thumos14_map.json", *EXTRACT, check=False)
    assert proc.returncode != 0 and "1 of the 412 videos" in proc.stdout and f"{ids[-1]}.mp4" in proc.stdout
    (fresh / f"data/thumos14/videos/{ids[-1]}.mp4").touch()
    proc = run(fresh, "-n", "-p", "results/thumos14_map.json", *EXTRACT)
    jobs = planned_jobs(proc.stdout)
    assert jobs["extract_features"] == 1 and jobs["ingest_real"] == 1 and jobs["train"] == 6
    assert "--output data/thumos14/features/i3d --rgb-weights data/weights/rgb_imagenet.pt" in proc.stdout
    assert "--format per-video" in proc.stdout and "--rgb-dir data/thumos14/features/i3d/rgb" in proc.stdout


def _tiny_mp4(path):
    """A real 8-frame H.264 file (imageio-ffmpeg's bundled ffmpeg)."""
    import imageio_ffmpeg
    import numpy as np

    writer = imageio_ffmpeg.write_frames(str(path), (32, 32), fps=8, macro_block_size=1)
    writer.send(None)
    for i in range(8):
        writer.send(np.full((32, 32, 3), 30 * i, dtype=np.uint8))
    writer.close()


def test_check_videos_opens_each_file_and_lists_every_bad_one(tmp_path):
    """A missing file stops the DAG before any job (the inputs check); a 0-byte or non-video
    file fails the check_videos job (not hours later on a GPU node), and all bad files are
    listed at once, in the rule's log."""
    root = scratch_copy(tmp_path)
    target = "results/checks/thumos14/videos.json"
    (root / "data/thumos14/raw/Thumos14reduced-I3D-JOINTFeatures.npy").touch()
    gt = root / "data/thumos14/canonical/ground_truth.json"
    gt.parent.mkdir(parents=True)
    ids = ["v_good", "v_empty", "v_text", "v_missing"]
    gt.write_text(json.dumps({"database": {v: {"subset": "train"} for v in ids} | {"v_test": {"subset": "test"}}}))
    videos = root / "data/thumos14/videos"
    videos.mkdir(parents=True)
    for v in ids:  # present while the chain is recorded as done
        (videos / f"{v}.mp4").touch()
    fake_outputs(root, target)  # ingest_real recorded as done; gt keeps its content
    (root / target).unlink()
    (videos / "v_missing.mp4").unlink()
    _tiny_mp4(videos / "v_good.mp4")
    (videos / "v_empty.mp4").touch()
    (videos / "v_text.mp4").write_text("not a video\n")
    proc = run(root, "--cores", "1", target, check=False)
    assert proc.returncode != 0 and "1 of the 4 training videos" in proc.stdout  # the ingested ids
    assert "data/thumos14/videos/v_missing.mp4" in proc.stdout and "v_empty.mp4" not in proc.stdout
    assert not (root / "logs/data/thumos14/check_videos.log").exists()  # no job ran
    (videos / "v_missing.mp4").write_bytes(b"\x00" * 16)
    proc = run(root, "--cores", "1", target, check=False)
    log = (root / "logs/data/thumos14/check_videos.log").read_text()
    assert "3 of 4 train videos cannot be read" in log
    assert "data/thumos14/videos/v_empty.mp4: empty file (0 bytes)" in log
    assert "data/thumos14/videos/v_text.mp4: not a readable video" in log
    assert "data/thumos14/videos/v_missing.mp4: not a readable video" in log
    assert "v_good" not in log and "v_test" not in log
    assert "v_text.mp4" in proc.stdout  # show-failed-logs prints it too
    (videos / "v_empty.mp4").unlink()
    (videos / "v_text.mp4").unlink()
    for v in ("v_empty", "v_text", "v_missing"):
        _tiny_mp4(videos / f"{v}.mp4")
    run(root, "--cores", "1", target)
    assert json.loads((root / target).read_text())["checked"] == 4
