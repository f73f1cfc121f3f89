"""Base WTAL methods, constructible by name (``BASE_METHODS``)."""

from __future__ import annotations

from typing import Any

from . import co2net, delu  # noqa: F401  (register the methods)
from .base import BASE_METHODS, BaseMethod, BaseOutput, Batch, TrainingObjective, register_base_method

# Config fields handed to every base method as hyperparameters.
HYPERPARAMETER_FIELDS = (
    "k",
    "dropout_ratio",
    "alpha1",
    "alpha2",
    "alpha3",
    "alpha4",
    "num_similar",
    "pool_t",
    "max_seqlen",
    "iterations",
    "alpha_edl",
    "alpha_uct_guide",
    "amplitude",
    "rat_atn",
    "uct_guide_order",
    "edl_form",
)


def build_base_method(config: Any, feature_dim: int, num_classes: int) -> BaseMethod:
    """Instantiate ``config.method`` with the hyperparameters it reads from ``config``."""
    if config.method not in BASE_METHODS:
        raise ValueError(f"unknown base method {config.method!r}; registered: {sorted(BASE_METHODS)}")
    hp = {name: getattr(config, name) for name in HYPERPARAMETER_FIELDS}
    return BASE_METHODS[config.method](feature_dim, num_classes, **hp)


__all__ = [
    "BASE_METHODS",
    "Batch",
    "BaseMethod",
    "BaseOutput",
    "TrainingObjective",
    "register_base_method",
    "build_base_method",
]
