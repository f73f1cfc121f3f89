"""Backends that describe videos, chosen by name (``--backend``)."""

from __future__ import annotations

from typing import Any

from wtal_common.errors import ConfigError

from .base import Backend, Generation, Request, text_flags

BACKENDS = ("hf", "template", "synthetic", "vllm")


def make_backend(name: str, **options: Any) -> Backend:
    """Build (without loading weights) the backend ``name`` from the run's options."""
    if name == "template":
        from .template import TemplateBackend

        return TemplateBackend()
    if name == "synthetic":
        from .synthetic import SyntheticBackend

        return SyntheticBackend(options.get("scripts"), seed=options.get("seed", 0), noise=options.get("noise"))
    common = {k: options[k] for k in ("revision", "max_new_tokens", "num_frames", "target_fps", "seed") if k in options}
    if name == "hf":
        from .hf import HFBackend

        return HFBackend(options.get("model"), device=options.get("device"), dtype=options.get("dtype"), **common)
    if name == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(options.get("model"), **common)
    raise ConfigError(f"--backend {name!r}: choose one of {BACKENDS}")


__all__ = ["Backend", "Generation", "Request", "text_flags", "make_backend", "BACKENDS"]
