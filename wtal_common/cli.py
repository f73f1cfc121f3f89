"""The one place where errors become exit codes, for every command of every stage."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import EXIT_FAILED, PartialFailure, StageError, UserError

log = logging.getLogger("wtal")

EXIT_CODES_HELP = (
    "exit codes: 0 done; 1 some items failed, or an unexpected error (traceback in the log); "
    "2 bad input or configuration (the message names the file or option); 3 stopped (e.g. non-finite loss)"
)


def run_cli(command: Callable[[], int | None], logger: logging.Logger | None = None) -> int:
    """Run ``command`` (logging already set up) and map what it raises to an exit code.

    :class:`UserError` -> its message, exit 2; :class:`StageError` -> its message, exit 3;
    :class:`PartialFailure` -> its message, exit 1; anything else is a bug: the traceback
    goes to the log (file included) and exit 1.  ``SystemExit`` and ``KeyboardInterrupt``
    pass through.
    """
    logger = logger or log
    try:
        code = command()
    except (UserError, StageError, PartialFailure) as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # a bug, not bad input: keep the traceback in the log file too
        logger.exception("unexpected error")
        return EXIT_FAILED
    return int(code or 0)


def program_name(module: str, script: str) -> str:
    """The name a command's usage line shows: ``script`` when run as that console script
    (``[project.scripts]`` in pyproject.toml), else ``python -m module``."""
    invoked = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if invoked == script else f"python -m {module}"
