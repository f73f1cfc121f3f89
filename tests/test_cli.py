"""Every command behaves the same way: one error hierarchy, one exit-code mapping
(wtal_common.cli.run_cli), one logging setup whose --log file receives user errors and
the tracebacks of bugs, and usage lines that name the console script that was run."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.cli import main as evaluation_main
from prior_generation.cli import main as priors_main
from prior_generation.text_priors.__main__ import main as text_priors_main
from tests.helpers.toy_data import make_toy_dataset
from wtal_common.errors import ConfigError, InputError, UserError
from wtal_common.logs import close_file_handlers
from wtal_data.cli import main as data_main
from wtal_training.cli import main as training_main

REPO = Path(__file__).resolve().parents[1]
SYNTH_CONFIG = str(REPO / "config" / "synthetic.yaml")


@pytest.fixture(autouse=True)
def _release_log_files():
    yield
    close_file_handlers()
    logging.getLogger().handlers.clear()


def read_log(path: Path) -> str:
    close_file_handlers()
    return path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- one hierarchy


def test_every_project_error_is_a_user_error():
    from evaluation import EvaluationError
    from prior_generation.store import PriorsFileError
    from prior_generation.text_priors import TextPriorsError
    from wtal_data.canonical import DatasetError
    from wtal_data.synthetic.scripts import SynthConfigError
    from wtal_data.word_vectors import WordVectorError
    from wtal_training import config as training_config
    from wtal_training.checkpoint import CheckpointError
    from wtal_training.mllm4wtal import settings as plugin_settings
    from wtal_training.mllm4wtal.text_inputs import TextPriorError

    for cls in (PriorsFileError, TextPriorsError, DatasetError, WordVectorError, TextPriorError, EvaluationError):
        assert issubclass(cls, InputError), cls
    assert issubclass(CheckpointError, InputError) and not issubclass(CheckpointError, DatasetError)
    assert issubclass(SynthConfigError, ConfigError) and issubclass(SynthConfigError, DatasetError)
    # the trainer's and the plug-ins' config errors are one class
    assert training_config.ConfigError is plugin_settings.ConfigError is ConfigError
    assert issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)


# ---------------------------------------------------------------- --log gets user errors and bugs

# (main, argv given the tmp folder, text the log must show): each names a missing file
USER_ERRORS = {
    "evaluation": (
        evaluation_main,
        lambda t: ["--ground-truth", str(t / "gt.json"), "--predictions", str(t / "p.json")],
        "gt.json",
    ),
    "priors generate": (
        priors_main,
        lambda t: (
            ["generate", "--ground-truth", str(t / "no_gt.json"), "--backend", "template"]
            + ["--output", str(t / "s.parquet")]
        ),
        "no_gt.json",
    ),
    "priors merge": (
        priors_main,
        lambda t: (
            ["merge", "--ground-truth", str(t / "no_gt.json"), "--shards", str(t / "s.parquet")]
            + ["--output", str(t / "d.parquet")]
        ),
        "no_gt.json",
    ),
    "text_priors build": (
        text_priors_main,
        lambda t: ["build", "--descriptions", str(t / "no_desc.parquet"), "--output-dir", str(t / "tp")],
        "no_desc.parquet",
    ),
    "data ingest": (
        data_main,
        lambda t: (
            ["ingest", "--dataset", "thumos14", "--annotations", str(t / "no_ann"), "--no-features"]
            + ["--output", str(t / "out")]
        ),
        "no_ann",
    ),
    "data synth": (
        data_main,
        lambda t: ["synth", "--config", SYNTH_CONFIG, "--structure", str(t / "no_gt.json"), "--output", str(t / "o")],
        "no_gt.json",
    ),
    "training train": (
        training_main,
        lambda t: ["train", "--data", str(t / "no_data"), "--method", "delu", "--output-dir", str(t / "o")],
        "no_data",
    ),
    "training evaluate": (
        training_main,
        lambda t: (
            ["evaluate", "--data", str(t / "no_data"), "--checkpoint", str(t / "no.safetensors")]
            + ["--output-dir", str(t / "o")]
        ),
        "no.safetensors",
    ),
    "training predict": (
        training_main,
        lambda t: (
            ["predict", "--checkpoint", str(t / "no.safetensors"), "--features", str(t / "v.npy")]
            + ["--output", str(t / "o.json")]
        ),
        "no.safetensors",
    ),
}


@pytest.mark.parametrize("name", sorted(USER_ERRORS))
def test_user_error_exits_2_and_is_in_the_log_file(tmp_path, capsys, name):
    main, argv, needle = USER_ERRORS[name]
    log = tmp_path / "logs" / "cmd.log"
    assert main(argv(tmp_path) + ["--log", str(log)]) == 2
    text = read_log(log)
    assert needle in text and "ERROR" in text and "Traceback" not in text
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


# (main, argv, "module.attribute" the command calls, patched to fail like a bug would)
BUGS = {
    "evaluation": (
        evaluation_main,
        ["--ground-truth", "g.json", "--predictions", "p.json"],
        "evaluation.cli.load_json",
    ),
    "priors generate": (
        priors_main,
        ["generate", "--ground-truth", "g.json", "--backend", "template", "--output", "{t}/s.parquet"],
        "prior_generation.generate.run_generate",
    ),
    "text_priors build": (
        text_priors_main,
        ["build", "--descriptions", "d.parquet", "--output-dir", "{t}/tp", "--no-progress"],
        "prior_generation.text_priors.__main__.build_text_priors",
    ),
    "data ingest": (
        data_main,
        ["ingest", "--dataset", "thumos14", "--annotations", "a", "--no-features", "--output", "{t}/o"],
        "wtal_data.ingest.ingest",
    ),
    "data synth": (
        data_main,
        ["synth", "--structure", "g.json", "--output", "{t}/o"],
        "wtal_data.synthetic.load_config",
    ),
    "training train": (
        training_main,
        ["train", "--data", "d", "--method", "delu", "--output-dir", "{t}/o"],
        "wtal_training.cli.load_ground_truth",
    ),
    "training evaluate": (
        training_main,
        ["evaluate", "--data", "d", "--checkpoint", "c.safetensors", "--output-dir", "{t}/o"],
        "wtal_training.trained_model.load_checkpoint",
    ),
    "training predict": (
        training_main,
        ["predict", "--checkpoint", "c.safetensors", "--features", "v.npy", "--output", "{t}/o.json"],
        "wtal_training.trained_model.load_checkpoint",
    ),
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_bug_exits_1_with_its_traceback_in_the_log_file(tmp_path, monkeypatch, name):
    main, argv, target = BUGS[name]

    def broken(*args, **kwargs):
        raise RuntimeError("boom: a bug, not bad input")

    monkeypatch.setattr(target, broken)
    log = tmp_path / "cmd.log"
    assert main([a.format(t=tmp_path) for a in argv] + ["--log", str(log)]) == 1
    text = read_log(log)
    assert "Traceback" in text and "RuntimeError: boom: a bug, not bad input" in text and "in broken" in text


# ---------------------------------------------------------------- training: bad setups exit 2 before training


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy") / "toy", feature_dim=8, num_train=6, num_test=3)


def train(toy: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    log = tmp_path / "train.log"
    argv = ["train", "--data", str(toy), "--method", "delu", "--iterations", "2", "--device", "cpu"]
    rc = training_main(argv + ["--output-dir", str(tmp_path / "o"), "--no-progress", "--log", str(log), *extra])
    return rc, read_log(log)


def test_unknown_plugin_option_exits_2_naming_it(toy, tmp_path):
    rc, log = train(toy, tmp_path, "--set", "mllm4wtal={bogus: 1}")
    assert rc == 2 and "bogus" in log and "mllm4wtal" in log
    assert not (tmp_path / "o" / "seed0").exists()  # refused before any training


def test_missing_text_priors_folder_exits_2_naming_it(toy, tmp_path):
    rc, log = train(toy, tmp_path, "--modules", "ksm", "--text-priors", str(tmp_path / "no_such_priors"))
    assert rc == 2 and "no_such_priors" in log and "not found" in log


def test_modules_without_text_priors_exit_2(toy, tmp_path):
    rc, log = train(toy, tmp_path, "--modules", "ksm")
    assert rc == 2 and "--text-priors" in log
    assert not (tmp_path / "o" / "seed0").exists()


# ---------------------------------------------------------------- usage lines name the command that ran

COMMANDS = [  # (main, console script, python -m module)
    (evaluation_main, "mllm4wtal-eval", "evaluation"),
    (priors_main, "mllm4wtal-priors", "prior_generation"),
    (training_main, "mllm4wtal-train", "wtal_training"),
    (data_main, "mllm4wtal-data", "wtal_data"),
]


@pytest.mark.parametrize("main, script, module", COMMANDS)
def test_usage_line_names_the_console_script(monkeypatch, capsys, main, script, module):
    monkeypatch.setattr(sys, "argv", [f"/opt/venv/bin/{script}"])
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {script} ")
    assert "exit codes:" in out and "thin wrapper" not in out.lower() and ":mod:" not in out and ":func:" not in out
    monkeypatch.setattr(sys, "argv", [str(REPO / module / "__main__.py")])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith(f"usage: python -m {module} ")


def test_subcommand_usage_names_the_console_script(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/mllm4wtal-train"])
    with pytest.raises(SystemExit):
        training_main(["train", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: mllm4wtal-train train ") and "final checkpoint" in " ".join(out.split())


@pytest.mark.skipif(shutil.which("mllm4wtal-eval") is None, reason="package not installed (no console scripts)")
def test_installed_console_script_usage():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["mllm4wtal-eval", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: mllm4wtal-eval "), proc.stdout + proc.stderr
