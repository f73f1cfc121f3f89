"""Backends that describe videos, chosen by name (``--backend``).

Each backend registers a factory in :data:`BACKENDS`; the factory imports its module only
when called, so choosing ``template`` never imports transformers, and ``vllm`` is only
needed by those who ask for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wtal_common.registry import Registry

from ..settings import DEFAULTS
from .base import Backend, Generation, Request, text_flags

BackendFactory = Callable[..., Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend", field="--backend")

# Options the model-backed backends share (the run's generation settings).
COMMON_OPTIONS = ("revision", "max_new_tokens", "num_frames", "target_fps", "seed")


def _common(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in COMMON_OPTIONS if k in options}


@BACKENDS.register("hf")
def _hf(**options: Any) -> Backend:
    from .hf import HFBackend

    return HFBackend(options.get("model"), device=options.get("device"), dtype=options.get("dtype"), **_common(options))


@BACKENDS.register("template")
def _template(**options: Any) -> Backend:
    from .template import TemplateBackend

    return TemplateBackend()


@BACKENDS.register("synthetic")
def _synthetic(**options: Any) -> Backend:
    from .synthetic import SyntheticBackend

    return SyntheticBackend(options.get("scripts"), seed=options.get("seed", DEFAULTS.seed), noise=options.get("noise"))


@BACKENDS.register("vllm")
def _vllm(**options: Any) -> Backend:
    from .vllm import VLLMBackend

    return VLLMBackend(options.get("model"), **_common(options))


def make_backend(name: str, **options: Any) -> Backend:
    """Build (without loading weights) the backend ``name`` from the run's options."""
    return BACKENDS[name](**options)


__all__ = ["Backend", "Generation", "Request", "text_flags", "make_backend", "BACKENDS"]
