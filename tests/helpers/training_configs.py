"""Training configurations the tests share: toy widths for the MLLM4WTAL branches and short
schedules, built through the real config code (``build_config``), so a test's config is
validated like a user's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wtal_training.config import TrainConfig, build_config
from wtal_training.mllm4wtal import MLLM4WTALObjective, resolve_settings

# Branch widths for 16-d toy features: small enough for a CPU test, every branch still there.
SMALL_BRANCHES = {
    "text_dim": 32,
    "text_heads": 4,
    "n_context": 4,
    "csr_dim": 32,
    "csr_heads": 4,
    "csr_layers": 1,
    "csr_ffn": 64,
    "loc_hidden": 32,
    "lr": 1e-3,
}
TINY_BRANCHES = {
    "text_dim": 16,
    "text_heads": 2,
    "n_context": 2,
    "csr_dim": 16,
    "csr_heads": 2,
    "csr_layers": 1,
    "csr_ffn": 32,
    "loc_hidden": 16,
}
# The localization head learns from iteration 1 on 4 windows of 16 snippets; pseudo-labels every 5.
HEAD_FROM_THE_START = {
    "loc_warmup": 0.0,
    "loc_ramp": 0.0,
    "loc_refresh_every": 5,
    "loc_window": 16,
    "loc_batch_size": 4,
}


def fast_sets(max_seqlen: int, log_every: int, checkpoint_every: int, timelines: int, **extra: Any) -> list[str]:
    """``--set`` items of a short CPU run: short videos, a high learning rate, little dropout."""
    items = {
        "max_seqlen": max_seqlen,
        "lr": 1e-3,
        "dropout_ratio": 0.3,
        "log_every": log_every,
        "checkpoint_every": checkpoint_every,
        "num_timeline_videos": timelines,
        **extra,
    }
    return [f"{name}={value}" for name, value in items.items()]


def plugin_config(
    modules: Iterable[str] = ("ksm", "csr"),
    mllm4wtal: Mapping[str, Any] | None = None,
    method: str = "delu",
    sets: Iterable[str] = (),
    **explicit: Any,
) -> TrainConfig:
    """A THUMOS14-family config of ``method`` with ``modules`` and these plug-in settings."""
    config = build_config(method, "thumos14", sets=list(sets), modules=list(modules), **explicit)
    return config.updated({"mllm4wtal": dict(mllm4wtal or {})}) if mllm4wtal else config


def mllm4wtal_objective(
    base: Any,
    text_priors: Any,
    modules: Iterable[str] = ("ksm", "csr"),
    mllm4wtal: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    train_config: Any = None,
    data: Any = None,
    seed: int = 0,
) -> MLLM4WTALObjective:
    """The MLLM4WTAL objective on ``base`` (a toy base method) with ``modules``."""
    settings = resolve_settings(plugin_config(modules, mllm4wtal, sets=sets))
    return MLLM4WTALObjective(settings, base, text_priors, train_config, data, seed)
