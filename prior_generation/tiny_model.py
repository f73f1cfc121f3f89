"""Build a tiny random-weight video MLLM of a real architecture, fully offline.

Real MLLM weights cannot be downloaded on the development machines, yet the ``hf``
backend must be exercised end to end: the same processor call, the same chat template,
the same ``generate`` with left padding.  This module builds such a model from a config
(hidden size ~32, 2 layers), a byte-level BPE tokenizer trained locally with the
``tokenizers`` library on a small fixed corpus, and the architecture's own processor,
then saves everything with ``save_pretrained`` so that
``AutoProcessor.from_pretrained(DIR)`` and
``AutoModelForImageTextToText.from_pretrained(DIR)`` work with ``HF_HUB_OFFLINE=1``.

Two architectures are supported:

* ``llava_next_video``: CLIP vision tower + Llama text model (LLaVA-NeXT-Video).
* ``qwen2_vl``: Qwen2-VL's vision transformer + Qwen2 text model (M-RoPE).

The outputs are random text; only the plumbing is real.  Image size is kept tiny
(32 px for LLaVA, 56 px for Qwen2-VL) so a CPU test runs in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

from wtal_common.errors import ConfigError

ARCHITECTURES = ("llava_next_video", "qwen2_vl")

# A chat template that understands the content-list message format of transformers
# ({"type": "video"} / {"type": "text"} parts), so the backend can call
# ``processor.apply_chat_template`` exactly as it does for a real model.
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'].upper() }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}{{ VIDEO }}\n"
    "{% elif part['type'] == 'image' %}{{ IMAGE }}\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)

_CORPUS = [
    "This video contains the actions of cliff diving. Please describe the action with one sentence.",
    "A person jumps from a high cliff into the water below, rotating in the air before entering.",
    "The athlete throws the ball, swings the bat, runs across the field and slides into the base.",
    "Two people play tennis on a court, hitting the ball back and forth with rackets.",
    "A man lifts a heavy barbell above his head, holds it, and drops it onto the platform.",
    "The gymnast performs a routine on the balance beam with flips, turns and a landing.",
    "a video of the action in detail: first, then, after that, finally, the end.",
    "0 1 2 3 4 5 6 7 8 9 , . ; : ! ? ' \" ( ) - the of and to in is with on for at by",
]


def _build_tokenizer(special: list[str]):
    """A byte-level BPE tokenizer trained on a fixed corpus: deterministic, offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


def _fast_tokenizer(tok, **special_map):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **special_map)
    fast.chat_template = None
    return fast


# Shapes: "tiny" for tests on a CPU; "7b" mirrors the published 7B checkpoints
# (LLaVA-NeXT-Video-7B: CLIP-L/336 + Llama/Vicuna-7B; Qwen2-VL-7B) for GPU benchmarks.
SHAPES = {
    "tiny": {
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "kv_heads": 2,
        "intermediate": 64,
        "vision_hidden": 32,
        "vision_layers": 2,
        "vision_heads": 2,
        "vision_intermediate": 64,
        "vocab": None,
        "llava_image": 32,
        "llava_patch": 8,
        "qwen_pixels": 56 * 56,
    },
    "7b": {
        "hidden": 4096,
        "layers": 32,
        "heads": 32,
        "kv_heads": 32,
        "intermediate": 11008,
        "vision_hidden": 1024,
        "vision_layers": 24,
        "vision_heads": 16,
        "vision_intermediate": 4096,
        "vocab": 32064,
        "llava_image": 336,
        "llava_patch": 14,
        "qwen_pixels": 336 * 336,
        # Qwen2-VL-7B's own text shape (used with --arch qwen2_vl)
        "qwen_hidden": 3584,
        "qwen_layers": 28,
        "qwen_heads": 28,
        "qwen_kv_heads": 4,
        "qwen_intermediate": 18944,
        "qwen_vocab": 152064,
        "qwen_vision_layers": 32,
        "qwen_vision_hidden": 1280,
    },
}


def _build_llava_next_video(seed: int, shape: dict, init: bool = True):
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"]
    tok = _build_tokenizer(special)
    fast = _fast_tokenizer(
        tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
    )
    image_size, patch = shape["llava_image"], shape["llava_patch"]
    vision = CLIPVisionConfig(
        hidden_size=shape["vision_hidden"],
        intermediate_size=shape["vision_intermediate"],
        num_hidden_layers=shape["vision_layers"],
        num_attention_heads=shape["vision_heads"],
        image_size=image_size,
        patch_size=patch,
        projection_dim=shape["vision_hidden"],
    )
    text = LlamaConfig(
        vocab_size=max(len(fast), shape["vocab"] or 0),
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=8192,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    config = LlavaNextVideoConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=fast.convert_tokens_to_ids("<image>"),
        video_token_index=fast.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[image_size, image_size]],
        spatial_pool_stride=2,
        image_seq_length=(image_size // patch) ** 2,
        video_seq_length=(image_size // patch) ** 2 // 4,
    )
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(config).eval() if init else config
    size = {"shortest_edge": image_size}
    crop = {"height": image_size, "width": image_size}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
        image_processor=LlavaNextImageProcessor(
            size=size, crop_size=crop, image_grid_pinpoints=[[image_size, image_size]]
        ),
        tokenizer=fast,
        chat_template=_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<video>").replace("{{ IMAGE }}", "<image>"),
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return model, processor


def _build_qwen2_vl(seed: int, shape: dict, init: bool = True):
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    tok = _build_tokenizer(special)
    fast = _fast_tokenizer(tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {s: tok.token_to_id(s) for s in special}
    hidden = shape.get("qwen_hidden", shape["hidden"])
    heads = shape.get("qwen_heads", shape["heads"])
    half = hidden // heads // 2  # M-RoPE splits half the head dim over (t, h, w)
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    vision_hidden = shape.get("qwen_vision_hidden", shape["vision_hidden"])
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=max(len(fast), shape.get("qwen_vocab", shape["vocab"]) or 0),
            hidden_size=hidden,
            intermediate_size=shape.get("qwen_intermediate", shape["intermediate"]),
            num_hidden_layers=shape.get("qwen_layers", shape["layers"]),
            num_attention_heads=heads,
            num_key_value_heads=shape.get("qwen_kv_heads", shape["kv_heads"]),
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": section},
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
            bos_token_id=None,
        ),
        vision_config=dict(
            depth=shape.get("qwen_vision_layers", shape["vision_layers"]),
            embed_dim=vision_hidden,
            hidden_size=hidden,
            num_heads=shape["vision_heads"],
            mlp_ratio=4 if vision_hidden > 64 else 2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval() if init else config
    pixels = shape["qwen_pixels"]
    size = {"shortest_edge": pixels, "longest_edge": pixels}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=fast,
        chat_template=_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<|vision_start|><|video_pad|><|vision_end|>").replace(
            "{{ IMAGE }}", "<|vision_start|><|image_pad|><|vision_end|>"
        ),
    )
    return model, processor


def make_model(arch: str, seed: int = 0, shape: str | dict = "tiny", init: bool = True):
    """(model, processor) of a random-weight video MLLM; with ``init=False`` the model is its config.

    Benchmarks build big shapes directly on the GPU: pass ``init=False`` and instantiate
    the returned config under ``torch.device("cuda")`` in the wanted dtype.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"--arch {arch!r}: choose one of {ARCHITECTURES}")
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ConfigError(f"shape {shape!r}: choose one of {sorted(SHAPES)}")
        shape = SHAPES[shape]
    builder = _build_llava_next_video if arch == "llava_next_video" else _build_qwen2_vl
    return builder(seed, dict(shape), init)


def build_tiny_model(arch: str, output: str | os.PathLike, seed: int = 0) -> Path:
    """Build, save and return the folder of a tiny random-weight video MLLM."""
    model, processor = make_model(arch, seed, "tiny")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.save_pretrained(output)
    processor.save_pretrained(output)
    return output
