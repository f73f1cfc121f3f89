"""A killed training run resumes where it stopped and ends bitwise equal to an uninterrupted one.

Checkpoint boundaries every 5 iterations; runs are "killed" at iteration 13 (so 11-13 are
redone from the iteration-10 state).  On the CPU with one thread every operation is
deterministic, so resumed and uninterrupted runs must agree exactly: weights, metrics
rows (all but wall-clock time) and test mAP.  The subprocess test kills with SIGKILL:
no cleanup code runs, as when a cluster job is killed.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.mllm4wtal_fakes import FakeTextPriors
from helpers.toy_data import make_toy_dataset
from helpers.training_configs import TINY_BRANCHES, fast_sets
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from wtal_common.logs import close_file_handlers
from wtal_data.canonical import DatasetError
from wtal_training import training
from wtal_training.cli import main
from wtal_training.config import build_config
from wtal_training.data import load_data
from wtal_training.mllm4wtal.objective import MLLM4WTALObjective
from wtal_training.objectives import PlainObjective
from wtal_training.seed_run import RESUME_FILE
from wtal_training.training import train_seed

torch.set_num_threads(1)
FAST = fast_sets(max_seqlen=24, log_every=4, checkpoint_every=5, timelines=0)
KILL_AT = 13
ITERATIONS = 20


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the engine handles it."""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=16, num_train=12, num_test=6)


def plain_config():
    return build_config("delu", "thumos14", sets=FAST, iterations=ITERATIONS)


def plugin_config():
    config = build_config("co2net", "thumos14", sets=FAST, iterations=ITERATIONS, modules=["ksm", "csr", "loc"])
    return config.updated({"mllm4wtal": TINY_BRANCHES})


def kill_at(monkeypatch, objective_class, iteration):
    original = objective_class.step

    def step(self, batch, it):
        if it == iteration:
            raise Killed(f"killed at iteration {it}")
        return original(self, batch, it)

    monkeypatch.setattr(objective_class, "step", step)


def metrics_without_time(run_dir: Path) -> list[list[str]]:
    rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("elapsed_s")
    return [r[:column] + r[column + 1 :] for r in rows]


def assert_same_final_state(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "checkpoint.safetensors"), load_file(b / "checkpoint.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert metrics_without_time(a) == metrics_without_time(b)
    assert json.loads((a / "map.json").read_text())["mAP"] == json.loads((b / "map.json").read_text())["mAP"]
    ra = torch.load(a / RESUME_FILE, weights_only=True)
    rb = torch.load(b / RESUME_FILE, weights_only=True)
    for name in ra["optimizers"]:  # optimizer moments too: a longer run would continue identically
        for index, state in ra["optimizers"][name]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, rb["optimizers"][name]["state"][index][key]), (name, index, key)


@pytest.mark.parametrize("kind", ["plain", "mllm4wtal"])
def test_killed_run_resumes_to_the_same_final_checkpoint(toy, tmp_path, monkeypatch, caplog, kind):
    data = load_data(toy, "cpu")
    config, objective_class = (plain_config(), PlainObjective) if kind == "plain" else (plugin_config(), None)
    priors = FakeTextPriors(classes=data.gt["classes"]) if kind == "mllm4wtal" else None
    objective_class = objective_class or MLLM4WTALObjective
    train_seed(data, config, 1, tmp_path / "straight", text_priors=priors, progress=False)

    with monkeypatch.context() as patch:
        kill_at(patch, objective_class, KILL_AT)
        with pytest.raises(Killed):
            train_seed(data, config, 1, tmp_path / "killed", text_priors=priors, progress=False)
    saved = torch.load(tmp_path / "killed" / RESUME_FILE, weights_only=True)
    assert saved["iteration"] == 10 and len(saved["rows"]) == 2  # rows at 4 and 8
    assert {len(v) for v in saved["pending"].values()} == {2}  # 9 and 10 await the row at 12
    with caplog.at_level("INFO", logger="wtal_training"):
        result = train_seed(data, config, 1, tmp_path / "killed", text_priors=priors, progress=False)
    assert "resuming from" in caplog.text and "at iteration 11 of 20" in caplog.text
    assert result["resumed_after_iteration"] == 10
    assert_same_final_state(tmp_path / "straight", tmp_path / "killed")


def test_finished_run_is_re_evaluated_not_retrained(toy, tmp_path, monkeypatch, caplog):
    data = load_data(toy, "cpu")
    first = train_seed(data, plain_config(), 0, tmp_path / "run", progress=False)
    kill_at(monkeypatch, PlainObjective, 1)  # any training step would raise
    with caplog.at_level("INFO", logger="wtal_training"):
        again = train_seed(data, plain_config(), 0, tmp_path / "run", progress=False)
    assert "holds a finished run (20 of 20 iterations): not retrained" in caplog.text
    assert again["mAP"] == first["mAP"] and again["train_seconds"] == first["train_seconds"]
    with pytest.raises(Killed):  # --restart trains again
        train_seed(data, plain_config(), 0, tmp_path / "run", progress=False, resume=False)
    assert not (tmp_path / "run" / RESUME_FILE).exists()  # the old state is gone with the restart


def test_state_of_another_experiment_is_not_resumed(toy, tmp_path, monkeypatch, caplog):
    data = load_data(toy, "cpu")
    with monkeypatch.context() as patch:
        kill_at(patch, PlainObjective, KILL_AT)
        with pytest.raises(Killed):
            train_seed(data, plain_config(), 0, tmp_path / "run", progress=False)
    changed = build_config("delu", "thumos14", sets=FAST + ["lr=2e-3"], iterations=ITERATIONS)
    caplog.clear()  # the killed first attempt had nothing to resume, and said so
    with caplog.at_level("INFO", logger="wtal_training"):
        train_seed(data, changed, 0, tmp_path / "run", progress=False)
    assert "belongs to another experiment (config.optimiser.lr differ): starting over" in caplog.text
    assert "seed 0: starting at iteration 1 of 20" in caplog.text
    assert "no resume state" not in caplog.text  # there was one, of another experiment
    train_seed(data, changed, 0, tmp_path / "straight", progress=False)
    assert_same_final_state(tmp_path / "run", tmp_path / "straight")


def test_a_run_with_nothing_to_resume_says_so(toy, tmp_path, monkeypatch, caplog):
    data = load_data(toy, "cpu")
    run = tmp_path / "run"
    kill_at(monkeypatch, PlainObjective, 1)  # the start is logged before the first step
    with caplog.at_level("INFO", logger="wtal_training"), pytest.raises(Killed):
        train_seed(data, plain_config(), 0, run, progress=False)
    assert f"seed 0: no resume state in {run}: starting at iteration 1 of 20" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="wtal_training"), pytest.raises(Killed):  # --restart, nothing to remove
        train_seed(data, plain_config(), 0, run, progress=False, resume=False)
    assert "seed 0: starting at iteration 1 of 20" in caplog.text and "no resume state" not in caplog.text
    zero = build_config("delu", "thumos14", sets=FAST, iterations=0)
    caplog.clear()
    with caplog.at_level("INFO", logger="wtal_training"):
        train_seed(data, zero, 0, tmp_path / "zero", progress=False)
    assert f"seed 0: no resume state in {tmp_path / 'zero'}: 0 iterations: the initial weights" in caplog.text


WALL_KILL_AT = 9


def test_wall_time_checkpoint_between_boundaries_resumes_bitwise(toy, tmp_path, monkeypatch, caplog):
    """``checkpoint_minutes``: with no ``checkpoint_every`` boundary in the run, a state is
    still written once that much wall time has passed; a run killed after it resumes from it
    and ends as the uninterrupted run, which wrote no such state (its clock is real)."""
    data = load_data(toy, "cpu")
    config = build_config(
        "delu", "thumos14", sets=[*FAST, "checkpoint_every=100", "checkpoint_minutes=5"], iterations=ITERATIONS
    )
    train_seed(data, config, 0, tmp_path / "straight", progress=False)

    now = [0.0]  # fake wall clock: every iteration takes a minute
    original = PlainObjective.step

    def step(self, batch, iteration):
        now[0] = 60.0 * iteration
        return original(self, batch, iteration)

    written = []
    real_save = training.save_resume_state

    def save(path, state):
        written.append(state["iteration"])
        real_save(path, state)

    with monkeypatch.context() as patch:
        patch.setattr(PlainObjective, "step", step)
        patch.setattr(training, "wall_clock", lambda: now[0])
        patch.setattr(training, "save_resume_state", save)
        kill_at(patch, PlainObjective, WALL_KILL_AT)
        with pytest.raises(Killed):
            train_seed(data, config, 0, tmp_path / "killed", progress=False)
    # iteration 6 is the first to begin 5 minutes after the start (its clock reads 5 min)
    assert written == [6]
    saved = torch.load(tmp_path / "killed" / RESUME_FILE, weights_only=True)
    assert saved["iteration"] == 6 and len(saved["rows"]) == 1  # the row at 4
    assert {len(v) for v in saved["pending"].values()} == {2}  # 5 and 6 await the row at 8
    config = config.updated({"output": {"checkpoint_minutes": None}})  # not in the state's identity: still resumed
    with caplog.at_level("INFO", logger="wtal_training"):
        result = train_seed(data, config, 0, tmp_path / "killed", progress=False)
    assert "at iteration 7 of 20" in caplog.text and result["resumed_after_iteration"] == 6
    assert_same_final_state(tmp_path / "straight", tmp_path / "killed")


def test_wall_time_checkpoints_are_single_process_and_can_be_off():
    def run(minutes, processes=1):
        return SimpleNamespace(
            config=SimpleNamespace(output=SimpleNamespace(checkpoint_minutes=minutes)), processes=processes
        )

    assert training.wall_time_checkpoints(run(5)) == 300.0
    assert training.wall_time_checkpoints(run(0.5)) == 30.0
    assert training.wall_time_checkpoints(run(None)) is None and training.wall_time_checkpoints(run(0)) is None
    assert training.wall_time_checkpoints(run(5, processes=2)) is None  # ranks must agree: off


def test_kill_before_the_first_log_leaves_no_tensorboard_file(toy, tmp_path, monkeypatch):
    data = load_data(toy, "cpu")
    kill_at(monkeypatch, PlainObjective, 3)
    with pytest.raises(Killed):
        train_seed(data, plain_config(), 0, tmp_path / "run", progress=False)
    assert not list((tmp_path / "run").glob("tensorboard/*")) and not (tmp_path / "run" / RESUME_FILE).exists()


DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from wtal_training.objectives import PlainObjective
    from wtal_training.cli import main

    torch.set_num_threads(1)
    kill_at, original = int(sys.argv[1]), PlainObjective.step

    def step(self, batch, iteration):
        if iteration == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a killed cluster job
        return original(self, batch, iteration)

    PlainObjective.step = step
    sys.exit(main(sys.argv[2:]))
    """
)


def scalar_steps(events_file: Path) -> list[int]:
    steps = []
    for event in EventFileLoader(str(events_file)).Load():
        if event.summary.value:
            steps.append(int(event.step))
    return steps


def test_sigkilled_cli_run_resumes_with_a_message_and_clean_tensorboard(toy, tmp_path):
    def args(out):
        return ["train", "--data", str(toy), "--method", "delu", "--iterations", str(ITERATIONS), "--device", "cpu"] + [
            "--output-dir",
            str(out),
            *sum([["--set", s] for s in FAST], []),
        ]

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    killed = subprocess.run(
        [sys.executable, str(driver), str(KILL_AT), *args(tmp_path / "run")], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert main(args(tmp_path / "run")) == 0
    assert main(args(tmp_path / "straight")) == 0
    close_file_handlers()
    assert_same_final_state(tmp_path / "run" / "seed0", tmp_path / "straight" / "seed0")
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count(f"seed 0: no resume state in {tmp_path / 'run' / 'seed0'}: starting at iteration 1 of 20") == 1
    assert log.count("resuming from") == 1 and "at iteration 11 of 20" in log
    events = sorted((tmp_path / "run" / "seed0" / "tensorboard").glob("events.out.tfevents.*"))
    steps = [scalar_steps(e) for e in events]
    assert len(events) == 2 and all(steps), steps  # no events file without scalars
    steps.sort(key=min)
    assert set(steps[0]) == {4, 8, 12} and set(steps[1]) == {12, 16, 20}  # 12 again: purged from the first


def test_unreadable_resume_state_is_a_named_error(toy, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RESUME_FILE).write_bytes(b"not a torch file")
    with pytest.raises(DatasetError, match=r"run/resume.pt: not a readable resume state .*--restart"):
        train_seed(load_data(toy, "cpu"), plain_config(), 0, tmp_path / "run", progress=False)
