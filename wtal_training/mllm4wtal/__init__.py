"""MLLM4WTAL plug-ins: Key Semantic Matching, Complete Semantic Reconstruction, Dual-Prior
Interactive Distillation and the prior-driven localization head, for any base method.

The engine calls :func:`build_mllm4wtal_objective` when a run's config names modules;
see docs/method.md ("MLLM4WTAL") for every config key and every decision.
"""

from .objective import (
    DEFAULTS,
    ConfigError,
    InferenceModel,
    MLLM4WTALObjective,
    build_inference_model,
    build_mllm4wtal_objective,
    resolve_config,
)

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "InferenceModel",
    "MLLM4WTALObjective",
    "build_inference_model",
    "build_mllm4wtal_objective",
    "resolve_config",
]
