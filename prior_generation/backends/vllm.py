"""The optional ``vllm`` backend: the same prompts through vLLM's offline engine (GPU only).

vLLM (``pip install mllm4wtal[vllm]``) runs Qwen2/2.5/3-VL and LLaVA-NeXT-Video offline
with continuous batching, typically several times the throughput of ``generate``.
It is imported only when this backend is chosen and is not needed anywhere else.
Frames go in as ``multi_modal_data={"video": (frames, metadata)}``; the prompt text is
the model's own chat template, rendered by its HF processor, as in the ``hf`` backend.
Greedy decoding (temperature 0); separate ``max_tokens`` per kind.  Not exercised by
the tests here (no GPU, no vLLM wheel for this CPU environment).
"""

from __future__ import annotations

from typing import Any

from wtal_common.errors import ConfigError

from ..settings import DEFAULTS
from .base import Generation, ModelBackend, Request, text_flags


class VLLMBackend(ModelBackend):
    name = "vllm"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        max_new_tokens: dict[str, int] | None = None,
        num_frames: int = DEFAULTS.num_frames,
        target_fps: float | None = DEFAULTS.target_fps,
        seed: int = DEFAULTS.seed,
        **engine_kwargs: Any,
    ):
        super().__init__(model, revision, max_new_tokens, num_frames, target_fps, seed)
        self.engine_kwargs = engine_kwargs
        self.engine = None

    def generation_params(self, kind: str) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens[kind],
            "do_sample": False,
            "num_beams": 1,
            "num_frames": self.num_frames,
            "target_fps": self.target_fps,
            "seed": self.seed,
        }

    def load(self) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ConfigError("--backend vllm: vLLM is not installed (pip install 'mllm4wtal[vllm]')") from exc
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(self.model, revision=self.revision)
        self.engine = LLM(
            model=self.model,
            revision=self.revision,
            seed=self.seed,
            limit_mm_per_prompt={"video": 1},
            **self.engine_kwargs,
        )

    def generate(self, requests: list[Request], kind: str) -> list[Generation]:
        from vllm import SamplingParams

        if self.engine is None:
            self.load()
        params = SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens[kind], seed=self.seed)
        inputs = []
        for r in requests:
            conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": r.prompt}]}]
            prompt = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            metadata = {
                "total_num_frames": r.video.total_frames,
                "fps": r.video.fps,
                "frames_indices": list(r.video.indices),
                "video_backend": "decord",
            }
            inputs.append({"prompt": prompt, "multi_modal_data": {"video": (r.video.frames, metadata)}})
        outputs = self.engine.generate(inputs, params, use_tqdm=False)
        results = []
        for out in outputs:
            completion = out.outputs[0]
            text = completion.text.strip()
            results.append(Generation(text=text, flags=text_flags(text, completion.finish_reason == "length")))
        return results
