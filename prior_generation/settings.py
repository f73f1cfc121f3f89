"""The one home of prior generation's defaults.

The CLI (``python -m prior_generation generate``), :class:`~prior_generation.generate.GenerateConfig`
and the ``hf``/``vllm``/``synthetic`` backends all take their defaults from :data:`DEFAULTS`;
the workflow's ``config/config.yaml`` passes only the settings a user overrides (for every
MLLM under ``priors``, or for one under ``mllms.<name>.priors``).  The prompts are the
paper's P_key (§3.1) and P_complete (§3.2); ``{cls}`` is replaced by the readable class name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationDefaults:
    num_frames: int = 16  # frames shown per video (uniform bin centres)
    target_fps: float | None = None  # None: uniform sampling; else this rate, at most num_frames frames
    batch_size: int = 8  # requests per generate call
    max_new_tokens_key: int = 64  # one sentence
    max_new_tokens_complete: int = 256  # a detailed description
    prompt_key: str = "This video contains the actions of {cls}. Please describe the action of {cls} with one sentence."
    prompt_complete: str = "This video contains the actions of {cls}. Please describe the action of {cls} in detail."
    seed: int = 0
    prefetch: int = 4  # videos decoded ahead by the background thread
    device: str | None = None  # hf: None/"auto" = cuda when available, else cpu
    dtype: str | None = None  # hf: None = gpu_dtype on a GPU, cpu_dtype on the CPU
    gpu_dtype: str = "bfloat16"
    cpu_dtype: str = "float32"  # CPU bf16 matmuls are slow and inexact

    def max_new_tokens(self) -> dict[str, int]:
        """Per prompt kind, as the backends take it."""
        return {"key": self.max_new_tokens_key, "complete": self.max_new_tokens_complete}

    def templates(self) -> dict[str, str]:
        return {"key": self.prompt_key, "complete": self.prompt_complete}


DEFAULTS = GenerationDefaults()
