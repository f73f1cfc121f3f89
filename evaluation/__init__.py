"""ActivityNet-protocol temporal action detection evaluation (mAP at tIoU thresholds).

Import :func:`evaluate_detection` and the presets from here; ``python -m evaluation``
is the CLI (see :mod:`evaluation.cli`).
"""

from .detection import average_precision, evaluate_detection
from .thresholds import (
    ACTIVITYNET_AVERAGES,
    ACTIVITYNET_TIOU,
    PRESETS,
    THUMOS14_AVERAGES,
    THUMOS14_TIOU,
    EvaluationError,
    parse_tiou,
)

__all__ = [
    "evaluate_detection",
    "average_precision",
    "EvaluationError",
    "parse_tiou",
    "PRESETS",
    "THUMOS14_TIOU",
    "THUMOS14_AVERAGES",
    "ACTIVITYNET_TIOU",
    "ACTIVITYNET_AVERAGES",
]
