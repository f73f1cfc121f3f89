"""Statistics over seeds: the one place the mean and the spread are computed."""

from __future__ import annotations

import math
from collections.abc import Iterable


def mean_and_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (n - 1); the std of one value is 0.0.

    Sample std because the seeds are a sample of the run-to-run distribution; papers in
    the field that report a spread over seeds use it too.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_and_std needs at least one value")
    mean = math.fsum(xs) / len(xs)
    if len(xs) < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
