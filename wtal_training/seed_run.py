"""One seed's training in progress: what setup, the loop, the resume state, the checkpoints and
the final evaluation share (:mod:`.training` builds and runs it, :mod:`.resume` saves and
restores it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wtal_common.errors import StageError

from .data import LoadedData
from .objectives import TrainingObjective
from .run_files import TensorBoardLog
from .sampler import Sampler

RESUME_FILE = "resume.pt"
CHECKPOINT_FILE = "checkpoint.safetensors"


class TrainingError(StageError):
    """Training stopped (e.g. a non-finite loss); the message names the iteration."""


@dataclass
class SeedRun:
    data: LoadedData
    config: Any  # TrainConfig
    seed: int
    output_dir: Path
    accelerator: Any
    objective: TrainingObjective
    sampler: Sampler
    is_main: bool
    done: int = 0  # iterations finished before this process started (resumed), else 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows so far
    pending: dict[str, list] = field(default_factory=dict)  # log values not yet averaged into a row
    seconds_before: float = 0.0  # training time of the attempts this one resumes
    last_good: tuple[int, dict[str, torch.Tensor]] = (0, {})  # weights kept for a non-finite stop
    tensorboard: TensorBoardLog | None = None

    @property
    def device(self) -> torch.device:
        return self.data.train.device

    @property
    def resume_path(self) -> Path:
        return self.output_dir / RESUME_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / CHECKPOINT_FILE

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes if self.accelerator is not None else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0

    def inference_weights(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the inference model's weights (kept as the last good ones)."""
        return {k: v.detach().cpu().clone() for k, v in self.objective.inference_model().state_dict().items()}

    def grad_scaler(self) -> Any:
        """accelerate's fp16 gradient scaler (its loss scale is state), if any."""
        return getattr(self.accelerator, "scaler", None) if self.accelerator is not None else None
