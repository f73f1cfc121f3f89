"""Base WTAL methods, constructible by name (``BASE_METHODS``)."""

from __future__ import annotations

from typing import Any

from . import co2net, ddgnet, delu, um, zhou2023  # noqa: F401  (register the methods)
from .base import BASE_METHODS, BaseMethod, BaseOutput, Batch, register_base_method


def build_base_method(config: Any, feature_dim: int, num_classes: int) -> BaseMethod:
    """Instantiate ``config.method`` with the hyperparameters it reads from ``config``."""
    method = BASE_METHODS[config.method]  # an unknown name: ConfigError listing the registered ones
    return method(feature_dim, num_classes, **method.hyperparameters_of(config))


__all__ = [
    "BASE_METHODS",
    "Batch",
    "BaseMethod",
    "BaseOutput",
    "register_base_method",
    "build_base_method",
]
