"""The ``hf`` backend: any video-capable MLLM behind transformers' Auto classes.

``AutoProcessor`` + ``AutoModelForImageTextToText`` load a hub id or a local folder
(LLaVA-NeXT-Video, Qwen2/2.5-VL, VideoLLaMA3's transformers port, ... or the tiny
models of :mod:`prior_generation.tiny_model`).  Choices, and why:

* bf16 on a GPU, fp32 on the CPU (CPU bf16 matmuls are slow and inexact); these and the
  other defaults (frames, token limits) are in :mod:`prior_generation.settings`.
* On a GPU, weights are placed by accelerate (``device_map="auto"``), so a model larger
  than one card still loads.
* Frames are passed as decoded uint8 arrays with their ``VideoMetadata`` (total frames,
  fps, sampled indices): given a path, transformers 5.x would decode with torchcodec,
  which is not installed, and would sample frames itself.  ``do_sample_frames=False``
  keeps our sampling.
* Batched generation needs left padding: the tokenizer is switched to it and the
  prompt is sliced off the output by its padded length.
* Greedy decoding by default; ``max_new_tokens`` differs per kind (a sentence vs a
  detailed description).  A row is flagged ``truncated`` when it used every new token
  without producing an end-of-sequence token, ``empty`` when the text is blank.
* A failing batch is retried one request at a time, so one bad video costs one row.
"""

from __future__ import annotations

import logging
from typing import Any

from wtal_common.errors import ConfigError

from ..settings import DEFAULTS
from .base import Generation, ModelBackend, Request, text_flags

log = logging.getLogger(__name__)


class HFBackend(ModelBackend):
    name = "hf"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        max_new_tokens: dict[str, int] | None = None,
        num_frames: int = DEFAULTS.num_frames,
        target_fps: float | None = DEFAULTS.target_fps,
        seed: int = DEFAULTS.seed,
        device: str | None = DEFAULTS.device,
        dtype: str | None = DEFAULTS.dtype,
        attn_implementation: str | None = None,
    ):
        super().__init__(model, revision, max_new_tokens, num_frames, target_fps, seed)
        self.device_name = device
        self.dtype_name = dtype
        self.attn_implementation = attn_implementation
        self.processor = None
        self.net = None

    def generation_params(self, kind: str) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens[kind],
            "do_sample": False,
            "num_beams": 1,
            "num_frames": self.num_frames,
            "target_fps": self.target_fps,
            "seed": self.seed,
            # bf16 and fp32 greedy decoding give different texts: a rerun in another dtype
            # must not reuse rows written in this one
            "dtype": self._resolved_dtype()[1],
        }

    def _resolved_dtype(self) -> tuple[bool, str]:
        """(runs on CUDA, dtype name): ``--dtype`` or the default for where the model runs."""
        import torch

        wants_cuda = self.device_name in (None, "auto") or str(self.device_name).startswith("cuda")
        cuda = torch.cuda.is_available() and wants_cuda  # "cuda:1" too: bf16 and accelerate placement
        return cuda, self.dtype_name or (DEFAULTS.gpu_dtype if cuda else DEFAULTS.cpu_dtype)

    def load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        cuda, name = self._resolved_dtype()
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(f"--dtype {self.dtype_name!r}: not a torch dtype (e.g. bfloat16, float16, float32)")
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if cuda:  # accelerate places the weights (over all cards, or on the one named)
            kwargs["device_map"] = "auto" if self.device_name in (None, "auto", "cuda") else self.device_name
        self.processor = AutoProcessor.from_pretrained(self.model, revision=self.revision)
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.net = AutoModelForImageTextToText.from_pretrained(self.model, **kwargs).eval()
        if not cuda and self.device_name not in (None, "cpu", "auto"):
            self.net.to(self.device_name)
        self._eos = set(_as_list(self.net.generation_config.eos_token_id) or [tokenizer.eos_token_id])
        log.info(
            "hf backend: loaded %s (revision %s) as %s on %s, %s",
            self.model,
            self.revision,
            type(self.net).__name__,
            self.net.device,
            dtype,
        )

    def _conversation(self, prompt: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]

    def _run(self, requests: list[Request], kind: str) -> list[Generation]:
        import torch
        from transformers.video_utils import VideoMetadata

        texts = [
            self.processor.apply_chat_template(self._conversation(r.prompt), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        videos = [r.video.frames for r in requests]
        metadata = [
            VideoMetadata(
                total_num_frames=r.video.total_frames,
                fps=r.video.fps,
                frames_indices=list(r.video.indices),
                height=int(r.video.frames.shape[1]),
                width=int(r.video.frames.shape[2]),
                video_backend="decord",
            )
            for r in requests
        ]
        inputs = self.processor(
            text=texts,
            videos=videos,
            video_metadata=metadata,
            do_sample_frames=False,
            padding=True,
            return_tensors="pt",
        )
        inputs = inputs.to(self.net.device)
        for key, value in inputs.items():  # pixels follow the model dtype; ids and timings stay as they are
            # (Qwen2.5-VL's float ``second_per_grid_ts`` sets M-RoPE time positions: bf16 would round it)
            if key.startswith("pixel_values") and torch.is_floating_point(value):
                inputs[key] = value.to(self.net.dtype)
        limit = self.max_new_tokens[kind]
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            output = self.net.generate(**inputs, max_new_tokens=limit, do_sample=False, num_beams=1)
        new_tokens = output[:, inputs["input_ids"].shape[1] :].cpu()
        results = []
        for row in new_tokens.tolist():
            pad = self.processor.tokenizer.pad_token_id
            while row and row[-1] == pad and pad not in self._eos:
                row.pop()
            ended = any(t in self._eos for t in row)
            truncated = len(row) >= limit and not ended
            text = self.processor.tokenizer.decode(row, skip_special_tokens=True).strip()
            results.append(Generation(text=text, flags=text_flags(text, truncated)))
        return results

    def generate(self, requests: list[Request], kind: str) -> list[Generation]:
        if self.net is None:
            self.load()
        try:
            return self._run(requests, kind)
        except Exception as exc:
            if len(requests) == 1:
                log.warning("hf backend: %s/%s/%s failed: %s", requests[0].video_id, requests[0].class_name, kind, exc)
                return [Generation(text=None, error=f"{type(exc).__name__}: {exc}"[:500])]
            log.warning("hf backend: batch of %d failed (%s); retrying one by one", len(requests), exc)
            _free_cuda()
            return [self.generate([r], kind)[0] for r in requests]


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # best effort only
        pass
