"""MLLM4WTAL plug-ins: Key Semantic Matching, Complete Semantic Reconstruction, Dual-Prior
Interactive Distillation and the prior-driven localization head, for any base method.

The ``mllm4wtal`` training objective (:class:`MLLM4WTALObjective`, registered in
``wtal_training.objectives``) runs when a run's config names modules; its branches are the
switched-on registered modules (:mod:`.branches`, :mod:`.plugins`); its settings are the
``mllm4wtal`` section of the config (:mod:`.settings`).  See docs/method.md ("MLLM4WTAL") for
every setting and every decision.
"""

from . import csr, ksm  # noqa: F401  (register the branches)
from .inference_model import InferenceModel
from .objective import MLLM4WTALObjective
from .settings import resolve_settings

__all__ = ["InferenceModel", "MLLM4WTALObjective", "resolve_settings"]
