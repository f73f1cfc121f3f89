"""One exception hierarchy for what the user can fix, and the exit codes every CLI uses.

Exit codes (the same for every command, documented in docs/architecture.md):

* 0 -- success;
* 1 -- the work ran but part of it failed (e.g. some videos could not be described), or an
  unexpected error (a bug: the traceback is printed and logged);
* 2 -- bad input or configuration (:class:`UserError`): the message names the file, video or
  config field, and nothing was written that looks complete;
* 3 -- the work started but stopped (:class:`StageError`, e.g. a non-finite training loss).

Stage packages subclass :class:`InputError` (bad files) or :class:`ConfigError` (bad
settings) so that one mapping, :func:`wtal_common.cli.run_cli`, turns them into exit 2;
:class:`PartialFailure` (exit 1) is for work that ran but left some items failed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3


class UserError(ValueError):
    """Something the user can fix; the message names the file, video or config field.

    A ``ValueError`` so that library callers catching ``ValueError`` keep working.
    """

    exit_code = EXIT_BAD_INPUT


class InputError(UserError):
    """A bad or missing input file (data set, checkpoint, descriptions, priors, video)."""


class ConfigError(UserError):
    """A config field or command-line option has a bad value."""


class PartialFailure(RuntimeError):
    """The work ran, but some items failed (e.g. ``--fail-fast`` stopped at a video that
    could not be described); the message says which.  Exit 1, without a traceback."""

    exit_code = EXIT_FAILED


class StageError(RuntimeError):
    """The work started on valid input but could not finish (e.g. the loss became NaN)."""

    exit_code = EXIT_STOPPED
