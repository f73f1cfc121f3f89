"""The one place where errors become exit codes, for every command of every stage."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .errors import EXIT_FAILED, StageError, UserError

log = logging.getLogger("wtal")


def run_cli(command: Callable[[], int | None], logger: logging.Logger | None = None) -> int:
    """Run ``command`` (logging already set up) and map what it raises to an exit code.

    :class:`UserError` -> its message, exit 2; :class:`StageError` -> its message, exit 3;
    anything else is a bug: the traceback goes to the log (file included) and exit 1.
    ``SystemExit`` and ``KeyboardInterrupt`` pass through.
    """
    logger = logger or log
    try:
        code = command()
    except UserError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except StageError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # a bug, not bad input: keep the traceback in the log file too
        logger.exception("unexpected error")
        return EXIT_FAILED
    return int(code or 0)
