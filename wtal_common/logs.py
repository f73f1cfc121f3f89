"""One logging setup for every CLI: a console handler and, in full, a log file.

The log file receives every record at INFO and above *and* the traceback of an uncaught
error (see :func:`wtal_common.cli.run_cli`), so a failed Snakemake or SLURM job's log
holds the reason it failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, console_level: int = logging.INFO) -> None:
    """Configure the root logger: stderr at ``console_level``, ``log_file`` (appended) at INFO.

    ``console_level=logging.ERROR`` suits commands whose progress bar owns the terminal.
    Calling it again replaces the handlers (tests run several CLIs in one process).
    """
    formatter = logging.Formatter(LOG_FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(formatter)
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        handlers.append(file_handler)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.captureWarnings(True)


def close_file_handlers() -> None:
    """Flush and close file handlers (so a test can read or delete the log)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            root.removeHandler(handler)
