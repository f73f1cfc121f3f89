"""The one home of prior generation's defaults.

The values are in ``prior_generation/defaults.yaml`` (also read by the workflow, so that a
changed default reruns the MLLM stage); this module gives them their types.  The CLI
(``python -m prior_generation generate``), :class:`~prior_generation.generate.GenerateConfig`
and the ``hf``/``vllm``/``synthetic`` backends all take their defaults from :data:`DEFAULTS`;
the workflow's ``config/config.yaml`` passes only the settings a user overrides (for every
MLLM under ``priors``, or for one under ``mllms.<name>.priors``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")


@dataclass(frozen=True)
class GenerationDefaults:
    num_frames: int  # frames shown per video (uniform bin centres)
    target_fps: float | None  # None: uniform sampling; else this rate, at most num_frames frames
    batch_size: int  # requests per generate call
    max_new_tokens_key: int
    max_new_tokens_complete: int
    prompt_key: str  # the paper's P_key (§3.1)
    prompt_complete: str  # the paper's P_complete (§3.2)
    seed: int
    prefetch: int  # videos decoded ahead by the background thread
    device: str | None  # hf: None/"auto" = cuda when available, else cpu
    dtype: str | None  # hf: None = gpu_dtype on a GPU, cpu_dtype on the CPU
    gpu_dtype: str
    cpu_dtype: str

    def max_new_tokens(self) -> dict[str, int]:
        """Per prompt kind, as the backends take it."""
        return {"key": self.max_new_tokens_key, "complete": self.max_new_tokens_complete}

    def templates(self) -> dict[str, str]:
        return {"key": self.prompt_key, "complete": self.prompt_complete}


def read_defaults(path: Path = DEFAULTS_FILE) -> GenerationDefaults:
    """The defaults file as :class:`GenerationDefaults`; a missing or unknown key is a bug of
    that file, named in the error."""
    values = yaml.safe_load(path.read_text()) or {}
    names = {f.name for f in fields(GenerationDefaults)}
    if set(values) != names:
        raise ValueError(f"{path}: keys {sorted(set(values) ^ names)} missing or unknown")
    return GenerationDefaults(**values)


DEFAULTS = read_defaults()
