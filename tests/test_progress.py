"""Progress: plain log lines when stderr is not a terminal, one tqdm bar per process when it is."""

import io
import logging

import pytest
from helpers.toy_data import make_toy_dataset

from wtal_common.logs import close_file_handlers
from wtal_training.cli import main
from wtal_training.progress import BarProgress, LineProgress, format_duration, make_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_train_with_non_tty_stderr_logs_lines_and_draws_no_bar(tmp_path, capsys):
    toy = make_toy_dataset(tmp_path / "toy", feature_dim=8, num_train=9, num_test=3, length_range=(20, 30))
    sets = [
        "max_seqlen=16",
        "log_every=5",
        "checkpoint_every=10",
        "num_timeline_videos=0",
        "batch_size=4",
        "num_similar=1",
    ]
    args = ["train", "--data", str(toy), "--method", "delu", "--iterations", "10", "--device", "cpu"]
    args += ["--output-dir", str(tmp_path / "out"), "--seeds", "0", "1"] + sum([["--set", s] for s in sets], [])
    assert main(args) == 0  # progress not switched off: pytest's stderr is not a terminal
    close_file_handlers()
    err = capsys.readouterr().err
    log = (tmp_path / "out" / "train.log").read_text()
    for text in (err, log):
        assert "\r" not in text
        for seed in (0, 1):
            for done in (5, 10):
                line = next(x for x in text.splitlines() if f"seed {seed}: iteration {done}/10 " in x)
                assert f"({done * 10:.1f}%) loss " in line and " it/s, ETA " in line
    assert len(log.splitlines()) < 40  # one line per report, not a bar per redraw


def test_a_terminal_gets_one_bar_and_other_processes_none():
    terminal = Terminal()
    progress = make_progress("seed 0", 3, 10, bar=True, is_main=True, stream=terminal)
    assert isinstance(progress, BarProgress)
    for _ in range(7):
        progress.advance()
    progress.close()
    assert "\r" in terminal.getvalue() and "10/10" in terminal.getvalue()
    quiet = Terminal()
    other = make_progress("seed 0", 0, 10, bar=True, is_main=False, stream=quiet)
    other.advance()
    other.report(1, {"loss": 1.0})
    other.close()
    assert quiet.getvalue() == ""
    assert isinstance(make_progress("seed 0", 0, 10, bar=False, is_main=True, stream=Terminal()), LineProgress)
    assert isinstance(make_progress("seed 0", 0, 10, bar=True, is_main=True, stream=io.StringIO()), LineProgress)


def test_lines_count_rate_from_the_resumed_iteration(caplog, monkeypatch):
    clock = iter([100.0, 110.0])
    monkeypatch.setattr("wtal_training.progress.time.perf_counter", lambda: next(clock))
    progress = make_progress("seed 2", 40, 100, bar=False, is_main=True)
    with caplog.at_level(logging.INFO, logger="wtal_training"):
        progress.report(60, {"iteration": 60, "elapsed_s": 9.0, "loss": 0.5, "match_loss": 0.25, "mil": 3.0})
    # 20 iterations in 10 s since the resume at 40: 2 it/s, 40 left: 20 s
    assert "seed 2: iteration 60/100 (60.0%) loss 0.5000, match_loss 0.2500, 2.00 it/s, ETA 20s" in caplog.text


@pytest.mark.parametrize(
    "seconds, text", [(7.2, "7s"), (245, "4m05s"), (3723, "1h02m03s"), (float("nan"), "?"), (float("inf"), "?")]
)
def test_durations(seconds, text):
    assert format_duration(seconds) == text
