"""One interface for every describer of videos: MLLMs, templates and the synthetic describer.

The runner hands a backend batches of :class:`Request` of one prompt kind and gets
back one :class:`Generation` per request, in order.  A backend never raises for a
single bad request if it can help it: it returns that request's ``error`` so the run
continues; an exception means the whole batch failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..frames import VideoFrames


@dataclass
class Request:
    video_id: str
    class_name: str
    kind: str  # "key" | "complete"
    prompt: str
    video: VideoFrames | None  # None for backends that do not look at the video
    decode_share: float = 0.0  # seconds of this video's decoding attributed to this row


@dataclass
class Generation:
    text: str | None
    flags: list[str] | None = None
    error: str | None = None


def text_flags(text: str | None, truncated: bool = False) -> list[str]:
    """Flags a downstream stage should know about: empty text, hit the token limit."""
    flags = []
    if text is None or not text.strip():
        flags.append("empty")
    if truncated:
        flags.append("truncated")
    return flags


class Backend:
    """Base class; subclasses set ``name`` and implement :meth:`generate`."""

    name: ClassVar[str] = "base"
    needs_frames: ClassVar[bool] = False

    def __init__(self, model: str = "", revision: str | None = None):
        self.model = model or ""
        self.revision = revision

    def generation_params(self, kind: str) -> dict[str, Any]:
        """What, besides the prompt, determines the text (stored per row, compared on resume)."""
        return {}

    def load(self) -> None:
        """Load weights etc.  Called once, only when there is work to do."""

    def generate(self, requests: list[Request], kind: str) -> list[Generation]:
        raise NotImplementedError


class ModelBackend(Backend):
    """A backend that runs a video MLLM on decoded frames (hf, vllm): the model check and the
    generation settings both share, in one place."""

    needs_frames: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        revision: str | None,
        max_new_tokens: dict[str, int] | None,
        num_frames: int,
        target_fps: float | None,
        seed: int,
    ):
        from wtal_common.errors import ConfigError

        from ..settings import DEFAULTS

        if not model:
            raise ConfigError(f"--model: the {self.name} backend needs a model id or a local folder")
        super().__init__(model=model, revision=revision)
        self.max_new_tokens = dict(max_new_tokens or DEFAULTS.max_new_tokens())
        self.num_frames = num_frames
        self.target_fps = target_fps
        self.seed = seed
