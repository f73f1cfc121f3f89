"""The ``synthetic`` backend: the seeded describer of the synthetic benchmark.

It stands in for an MLLM on generated data sets (their ``canonical/scripts.json`` says
what each video shows), so the demo runs this very stage end to end.  The describer
lives in :mod:`wtal_data.synthetic.describer`; it is imported only when
this backend is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wtal_common.errors import ConfigError, InputError

from ..settings import DEFAULTS
from .base import Backend, Generation, Request, text_flags


class SyntheticBackend(Backend):
    name = "synthetic"
    needs_frames = False

    def __init__(
        self, scripts: str | Path | None, seed: int = DEFAULTS.seed, noise: dict[str, float] | None = None, **kwargs
    ):
        super().__init__(model="synthetic-describer", revision=None)
        if scripts is None:
            raise ConfigError("--scripts: the synthetic backend needs the data set's canonical/scripts.json")
        self.scripts_path = Path(scripts)
        self.seed = int(seed)
        self.noise = noise
        self._scripts: Any = None
        self._describe = None

    def generation_params(self, kind: str) -> dict:
        return {"seed": self.seed, "noise": self.noise}

    def load(self) -> None:
        if not self.scripts_path.is_file():
            raise InputError(f"--scripts {self.scripts_path}: file not found")
        try:
            self._scripts = json.loads(self.scripts_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"--scripts {self.scripts_path}: not valid JSON ({exc})") from exc
        from wtal_data.synthetic.describer import describe

        self._describe = describe

    def generate(self, requests: list[Request], kind: str) -> list[Generation]:
        if self._describe is None:
            self.load()
        out = []
        for req in requests:
            try:
                text = self._describe(self._scripts, req.video_id, req.class_name, kind, self.seed, noise=self.noise)
            except Exception as exc:  # one unknown video must not end the run
                out.append(Generation(text=None, error=f"{type(exc).__name__}: {exc}"[:500]))
                continue
            out.append(Generation(text=text, flags=text_flags(text)))
        return out
