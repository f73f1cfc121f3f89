"""wtal_common: atomic output and its file mode, seed statistics, the CLI runner; and the
mode of two real outputs (evaluation's JSON, prior generation's Parquet) end to end."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.toy_data import make_toy_dataset
from wtal_common.cli import program_name, run_cli
from wtal_common.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    ConfigError,
    InputError,
    PartialFailure,
    StageError,
)
from wtal_common.io import atomic_output, atomic_write_json, atomic_write_text, default_file_mode
from wtal_common.logs import close_file_handlers, setup_logging
from wtal_common.stats import mean_and_std

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- atomic output


def test_atomic_output_error_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_output(target) as tmp:
            tmp.write_text("new but unfinished")
            raise RuntimeError("half-way")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_output_error_on_a_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "new.npy"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target, suffix=".npy") as tmp:
            assert tmp.name.endswith(".npy") and tmp.parent == target.parent
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert list((tmp_path / "sub").iterdir()) == []


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_output_mode_follows_the_umask(tmp_path, mask, expected):
    with umask(mask):
        assert default_file_mode() == expected
        path = atomic_write_json(tmp_path / "x.json", {"a": 1})
        with atomic_output(tmp_path / "y.bin") as tmp:
            tmp.write_bytes(b"y")
    assert mode_of(path) == expected and mode_of(tmp_path / "y.bin") == expected
    assert json.loads(path.read_text()) == {"a": 1}


# ---------------------------------------------------------------- statistics


def test_mean_and_std_hand_values():
    # 1..4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; sample variance 5 / 3
    mean, std = mean_and_std([1, 2, 3, 4])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    assert std == pytest.approx(1.2909944487)
    # two seeds: std = |a - b| / sqrt(2)
    mean, std = mean_and_std([0.30, 0.50])
    assert mean == pytest.approx(0.40) and std == pytest.approx(0.1414213562)
    assert mean_and_std(x for x in [0.7]) == (0.7, 0.0)  # one seed: no spread
    assert mean_and_std([0.2, 0.2, 0.2]) == (pytest.approx(0.2), pytest.approx(0.0))
    with pytest.raises(ValueError):
        mean_and_std([])


# ---------------------------------------------------------------- CLI runner and logging


@pytest.fixture
def log_file(tmp_path, capsys):
    """Logging to stderr (captured: ``capsys`` is set up first) and to a log file."""
    path = tmp_path / "logs" / "run.log"
    setup_logging(path)
    yield path
    close_file_handlers()
    logging.getLogger().handlers.clear()


def _raise(exc: BaseException):
    def command():
        raise exc

    return command


@pytest.mark.parametrize(
    "exc, code",
    [
        (InputError("data/x.json: missing"), EXIT_BAD_INPUT),
        (ConfigError("config 'lr' must be > 0"), EXIT_BAD_INPUT),
        (StageError("non-finite loss at iteration 7"), EXIT_STOPPED),
        (PartialFailure("2 rows failed"), EXIT_FAILED),
    ],
)
def test_run_cli_maps_errors_and_logs_the_message(log_file, capsys, exc, code):
    assert run_cli(_raise(exc)) == code
    close_file_handlers()
    text = log_file.read_text()
    assert str(exc) in text and "Traceback" not in text
    assert str(exc) in capsys.readouterr().err


def test_run_cli_logs_the_traceback_of_a_bug(log_file):
    def buggy():
        return {}["missing key"]

    assert run_cli(buggy) == EXIT_FAILED
    close_file_handlers()
    text = log_file.read_text()
    assert "Traceback" in text and "KeyError: 'missing key'" in text and "in buggy" in text


def test_run_cli_passes_the_return_code_and_interrupts():
    assert run_cli(lambda: None) == EXIT_OK and run_cli(lambda: 1) == 1
    with pytest.raises(KeyboardInterrupt):
        run_cli(_raise(KeyboardInterrupt()))


def test_program_name(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/mllm4wtal-eval", "--help"])
    assert program_name("evaluation", "mllm4wtal-eval") == "mllm4wtal-eval"
    monkeypatch.setattr(sys, "argv", [str(REPO / "evaluation" / "__main__.py")])
    assert program_name("evaluation", "mllm4wtal-eval") == "python -m evaluation"


# ---------------------------------------------------------------- file modes end to end


def test_evaluation_output_has_the_umask_mode(tmp_path):
    """Was 0600 (mkstemp's mode) before atomic_output chmod'ed its files."""
    gt = {"database": {"v1": {"subset": "test", "duration": 60.0, "annotations": [{"label": "A", "segment": [0, 10]}]}}}
    pred = {"results": {"v1": [{"label": "A", "score": 0.9, "segment": [0, 10]}]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    out = tmp_path / "eval_map.json"
    cmd = [sys.executable, "-m", "evaluation", "--ground-truth", "gt.json", "--predictions", "pred.json"]
    proc = subprocess.run(
        cmd + ["--output", out.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["mAP"]["0.5"] == 1.0
    assert mode_of(out) == 0o644


def test_descriptions_parquet_has_the_umask_mode(tmp_path):
    from prior_generation.cli import main as priors_main

    gt = make_toy_dataset(tmp_path / "toy", num_classes=2, num_train=3, num_test=1, feature_dim=4) / "ground_truth.json"
    shard, merged = tmp_path / "shard.parquet", tmp_path / "descriptions.parquet"
    try:
        with umask(0o022):
            assert (
                priors_main(["generate", "--ground-truth", str(gt), "--backend", "template", "--output", str(shard)])
                == 0
            )
            merge = ["merge", "--ground-truth", str(gt), "--shards", str(shard), "--output", str(merged)]
            assert priors_main(merge) == 0
    finally:
        close_file_handlers()
        logging.getLogger().handlers.clear()
    assert mode_of(shard) == 0o644 and mode_of(merged) == 0o644
