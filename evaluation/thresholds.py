"""tIoU threshold presets and their parsing, shared by the API and the CLI.

THUMOS14 papers report mAP at tIoU 0.1:0.1:0.7 and three averages (0.1:0.5, 0.3:0.7,
0.1:0.7); ActivityNet reports 0.5:0.05:0.95 and their mean.  Thresholds are built with
``np.linspace`` exactly as the official ActivityNet evaluator builds its default
(``np.linspace(0.5, 0.95, 10)``), so a tIoU that sits on a threshold is judged the same
way (0.9 is ``0.8999999999999999`` there, and here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from wtal_common.errors import InputError


class EvaluationError(InputError):
    """Bad evaluation input; the message names the file, video or field at fault."""


def tiou_range(start: float, stop: float, step: float) -> tuple[float, ...]:
    """Thresholds ``start, start + step, ..., stop`` (stop included), as ``np.linspace``."""
    if not (step > 0 and stop >= start):
        raise EvaluationError(f"tIoU range {start}:{stop}:{step} needs step > 0 and stop >= start")
    count = (stop - start) / step
    if abs(count - round(count)) > 1e-6:
        raise EvaluationError(f"tIoU range {start}:{stop}:{step}: stop is not start plus a whole number of steps")
    values = np.linspace(start, stop, int(round(count)) + 1)
    return check_thresholds(float(v) for v in values)


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Validate thresholds: each in (0, 1], no duplicates; returned in ascending order."""
    values = tuple(sorted(float(t) for t in thresholds))
    if not values:
        raise EvaluationError("no tIoU thresholds given")
    for t in values:
        if not (math.isfinite(t) and 0.0 < t <= 1.0):
            raise EvaluationError(f"tIoU threshold {t!r} is not in (0, 1]")
    if len(set(values)) != len(values):
        raise EvaluationError(f"duplicate tIoU thresholds in {list(values)}")
    return values


def parse_tiou(text: str) -> tuple[float, ...]:
    """Parse ``start:stop:step`` (stop inclusive) or a comma list ``0.1,0.3,0.5``."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise EvaluationError(f"--tiou {text!r}: expected start:stop:step")
            return tiou_range(*parts)
        return check_thresholds(float(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        if isinstance(exc, EvaluationError):
            raise
        raise EvaluationError(f"--tiou {text!r}: not a start:stop:step range or a comma list of numbers") from exc


def threshold_key(t: float) -> str:
    """The JSON key of a threshold: ``0.3``, ``0.55``, ``0.9`` (10 significant digits)."""
    return format(t, ".10g")


def average_key(low: float, high: float) -> str:
    return f"{threshold_key(low)}:{threshold_key(high)}"


THUMOS14_TIOU: tuple[float, ...] = tiou_range(0.1, 0.7, 0.1)
THUMOS14_AVERAGES: tuple[tuple[float, float], ...] = ((0.1, 0.5), (0.3, 0.7), (0.1, 0.7))
ACTIVITYNET_TIOU: tuple[float, ...] = tiou_range(0.5, 0.95, 0.05)
ACTIVITYNET_AVERAGES: tuple[tuple[float, float], ...] = ((0.5, 0.95),)

PRESETS: dict[str, tuple[tuple[float, ...], tuple[tuple[float, float], ...]]] = {
    "thumos14": (THUMOS14_TIOU, THUMOS14_AVERAGES),
    "activitynet": (ACTIVITYNET_TIOU, ACTIVITYNET_AVERAGES),
}


def default_averages(thresholds: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """A preset's averages when the thresholds are that preset's, else one over all."""
    values = tuple(thresholds)
    for preset_thresholds, averages in PRESETS.values():
        if values == preset_thresholds:
            return averages
    return ((min(values), max(values)),)
