"""Foundation shared by every stage: atomic file output, the user-error hierarchy and its
exit codes, one logging setup and one CLI runner, and seed statistics.

It imports no stage package (``wtal_data``, ``prior_generation``, ``wtal_training``,
``evaluation``), so every stage, evaluation included, may import it without breaking the
one-way chain described in docs/architecture.md.
"""

from .errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    ConfigError,
    InputError,
    PartialFailure,
    StageError,
    UserError,
)
from .io import atomic_output, atomic_write_bytes, atomic_write_json, atomic_write_text
from .logs import LOG_FORMAT, setup_logging
from .stats import mean_and_std

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "ConfigError",
    "InputError",
    "PartialFailure",
    "StageError",
    "UserError",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "LOG_FORMAT",
    "setup_logging",
    "mean_and_std",
]
