"""The ``template`` backend: the two no-MLLM arms of the paper's Table 5 ablation.

* key      -> the readable class name itself ("cliff diving")
* complete -> "a video of the {cls}" (the Boosting-WTAL template, anchors.md §2)

No video is decoded: these priors are, by design, the same for every video of a class.
"""

from __future__ import annotations

from ..prompts import readable_class_name
from .base import Backend, Generation, Request, text_flags

COMPLETE_TEMPLATE = "a video of the {cls}"


class TemplateBackend(Backend):
    name = "template"
    needs_frames = False

    def generation_params(self, kind: str) -> dict:
        return {"arm": "class_name" if kind == "key" else COMPLETE_TEMPLATE}

    def generate(self, requests: list[Request], kind: str) -> list[Generation]:
        out = []
        for req in requests:
            cls = readable_class_name(req.class_name)
            text = cls if kind == "key" else COMPLETE_TEMPLATE.format(cls=cls)
            out.append(Generation(text=text, flags=text_flags(text)))
        return out
