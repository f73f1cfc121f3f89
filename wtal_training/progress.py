"""Training progress: a tqdm bar on a terminal, plain log lines everywhere else.

A bar redraws itself with carriage returns; in a file (a Snakemake or SLURM log, stderr
redirected) those pile up on one line, and two jobs sharing a log interleave them into an
unreadable one.  So the bar is shown only when stderr is a terminal and progress is asked
for; otherwise a line ``seed 0: iteration 50/5000 (1.0%) loss 0.6931, 12.3 it/s, ETA
6m42s`` is logged at every ``log_every`` iterations (when the engine reads its losses
anyway, so progress adds no host sync).  Only the main process of a multi-process run
reports, one bar (or one stream of lines) per process and seed.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

log = logging.getLogger("wtal_training")


class Progress:
    """Reports nothing: the interface, and what non-main processes get."""

    def advance(self) -> None:
        """One iteration done (called every iteration: must not touch the device)."""

    def report(self, iteration: int, row: dict[str, Any]) -> None:
        """A metrics row was averaged at ``iteration`` (called every ``log_every``)."""

    def close(self) -> None:
        pass


class BarProgress(Progress):
    """A tqdm bar on a terminal, starting at the resumed iteration."""

    def __init__(self, desc: str, done: int, total: int, stream: TextIO) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, desc=desc, file=stream, mininterval=2.0, dynamic_ncols=True)

    def advance(self) -> None:
        self.bar.update(1)

    def report(self, iteration: int, row: dict[str, Any]) -> None:
        self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


class LineProgress(Progress):
    """One log line per report: iteration, losses, iterations per second, time left."""

    def __init__(self, desc: str, done: int, total: int) -> None:
        self.desc, self.done_at_start, self.total = desc, done, total
        self.started = time.perf_counter()

    def report(self, iteration: int, row: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - self.started
        rate = (iteration - self.done_at_start) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - iteration) / rate if rate > 0 else float("nan")
        losses = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k == "loss" or k.endswith("_loss"))
        log.info(
            "%s: iteration %d/%d (%.1f%%) %s, %.2f it/s, ETA %s",
            self.desc,
            iteration,
            self.total,
            100.0 * iteration / self.total,
            losses or "no loss logged",
            rate,
            format_duration(eta),
        )


def format_duration(seconds: float) -> str:
    """``1h02m03s``, ``4m05s``, ``7s``; ``?`` when unknown."""
    if not seconds == seconds or seconds == float("inf"):  # NaN or inf
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def make_progress(desc: str, done: int, total: int, bar: bool, is_main: bool, stream: TextIO | None = None) -> Progress:
    """A bar when ``bar`` is asked for and ``stream`` (default stderr) is a terminal, else log lines.

    ``done`` is the iteration a resumed run starts after (0 for a fresh one).
    """
    if not is_main:
        return Progress()
    stream = sys.stderr if stream is None else stream
    if bar and _is_terminal(stream):
        return BarProgress(desc, done, total, stream)
    return LineProgress(desc, done, total)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
