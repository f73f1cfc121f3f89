"""A seeded stand-in for the MLLM on synthetic data: key sentences and complete descriptions.

The paper asks an MLLM, per (video, class), for one sentence on the action (key
semantics, used by KSM) and a detailed description (complete semantics, used by CSR).
On synthetic data the describer reads the video's script (``scripts.json``, schema in
:mod:`.scripts`) and writes:

* ``kind="key"``: one sentence naming the most salient phases (the class's key phases
  first, then the longest), in temporal order;
* ``kind="complete"``: all phases the video shows for the class, in order, with some of
  the context words seen around its instances.

Noise stands in for MLLM mistakes: each content word is omitted with ``omit_prob`` or
replaced by a wrong word (a phase or context word of another class, or a background
word) with ``wrong_prob``.  Defaults come from ``scripts["describer"]`` (copied from
``config/synthetic.yaml``).  Output is a pure function of the arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .scripts import rng_for

KINDS = ("key", "complete")
KEY_TEMPLATES = (
    "The person does {acts} in this video.",
    "In this clip the athlete performs {acts}.",
    "The action shows {acts}.",
)
OPENINGS = ("The video starts", "At first we see the scene", "The clip begins")


def _join(words: list[str]) -> str:
    if not words:
        return "a movement"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _video_phases(scripts: Mapping[str, Any], video_id: str, class_name: str) -> tuple[list[str], list[str]]:
    """Phase words the video shows for the class (in script order) and the context words seen."""
    script = scripts["classes"][class_name]
    order = [p["word"] for p in script["phases"]]
    video = scripts.get("videos", {}).get(video_id)
    if video is None:
        return order, list(script["context"])
    fact = video.get("facts", {}).get(class_name)
    if fact:  # video-dependent sets: the performer's optional phases come before the key phase
        key = next(i for i, p in enumerate(script["phases"]) if p["key"])
        order = order[:key] + list(fact["optional"]) + order[key:]
    seen = {w for inst in video["instances"] if inst["label"] == class_name for w in inst["phases"]}
    context = [
        w
        for w in script["context"]
        if any(e["kind"] == "context" and e["label"] == class_name and e["word"] == w for e in video["events"])
    ]
    phases = [w for w in order if w in seen] or order
    return phases, context


def _wrong_words(scripts: Mapping[str, Any], class_name: str) -> list[str]:
    own = {p["word"] for p in scripts["classes"][class_name]["phases"]} | set(scripts["classes"][class_name]["context"])
    pool = {p["word"] for c, s in scripts["classes"].items() if c != class_name for p in s["phases"]}
    pool |= {w for c, s in scripts["classes"].items() if c != class_name for w in s["context"]}
    pool |= set(scripts.get("background_words", []))
    return sorted(pool - own)


def describe(
    scripts: Mapping[str, Any],
    video_id: str,
    class_name: str,
    kind: str,
    seed: int,
    noise: Mapping[str, float] | float | None = None,
) -> str:
    """The key sentence or complete description of ``class_name`` in ``video_id``.

    ``noise``: None keeps ``scripts["describer"]``; a mapping overrides its fields; a
    number sets ``omit_prob`` and ``wrong_prob`` (and, for video-dependent sets, the fact
    noise ``fact_omit_prob`` and ``fact_wrong_prob``) to it (0 gives clean text).  A
    ``style: video-dependent`` describer (``thumos14-vd``) writes with :mod:`.describer_vd`.
    """
    if kind not in KINDS:
        raise ValueError(f"describe: kind {kind!r} must be one of {KINDS}")
    if class_name not in scripts["classes"]:
        raise KeyError(f"describe: class {class_name!r} has no script in scripts.json")
    params = dict(scripts.get("describer", {}))
    if isinstance(noise, (int, float)):
        if not 0.0 <= float(noise) <= 0.5:
            raise ValueError(f"describe: noise {noise!r} must be in [0, 0.5]")
        noise = {key: float(noise) for key in ("omit_prob", "wrong_prob", "fact_omit_prob", "fact_wrong_prob")}
    params.update(noise or {})
    omit, wrong = float(params.get("omit_prob", 0.0)), float(params.get("wrong_prob", 0.0))
    rng = rng_for(seed, "describe", video_id, class_name, kind)
    pool = _wrong_words(scripts, class_name)

    def noisy(words: list[str]) -> list[str]:
        out = []
        for w in words:
            u = rng.random()
            if u < omit:
                continue
            if u < omit + wrong and pool:
                w = pool[rng.integers(len(pool))]
            out.append(w)
        return out

    phases, context = _video_phases(scripts, video_id, class_name)
    if params.get("style") == "video-dependent":
        from .describer_vd import describe_vd

        text = describe_vd(scripts, video_id, class_name, kind, seed, params, phases, context, noisy, rng)
        return with_subject(text, params)
    return with_subject(_describe_script(scripts, class_name, kind, params, phases, context, noisy, rng), params)


def with_subject(text: str, params: Mapping[str, Any]) -> str:
    """The text with its templates' performer ("the athlete") named as ``params["subject"]``.

    THUMOS14's classes are sports; ActivityNet's are mostly everyday activities (washing
    dishes, ironing clothes), where an MLLM says "the person".  The word is the same in every
    description of a set, so it carries no class information either way."""
    subject = str(params.get("subject", "athlete"))
    return text if subject == "athlete" else re.sub(r"\bathlete\b", subject, text)


def _describe_script(
    scripts: Mapping[str, Any],
    class_name: str,
    kind: str,
    params: Mapping[str, Any],
    phases: list[str],
    context: list[str],
    noisy: Callable[[list[str]], list[str]],
    rng: np.random.Generator,
) -> str:
    """The script-only describer (``thumos14-synth``, ``demo``): phases and context, no facts."""
    script = {p["word"]: p for p in scripts["classes"][class_name]["phases"]}
    if kind == "key":
        n = int(params.get("key_phases", 2))
        ranked = sorted(phases, key=lambda w: (not script[w]["key"], -script[w]["weight"], phases.index(w)))
        chosen = [w for w in phases if w in ranked[:n]]
        template = KEY_TEMPLATES[rng.integers(len(KEY_TEMPLATES))]
        return template.format(acts=_join([f"a {w}" for w in noisy(chosen)]))
    ctx_prob = float(params.get("context_prob", 0.7))
    shown = noisy([w for w in context if rng.random() < ctx_prob])
    steps = noisy(phases)
    parts = []
    if shown:
        parts.append(f"{OPENINGS[rng.integers(len(OPENINGS))]} near the {' and the '.join(shown)}.")
    if steps:
        body = f"First the athlete does a {steps[0]}"
        for w in steps[1:-1]:
            body += f", then a {w}"
        if len(steps) > 1:
            body += f", and finally a {steps[-1]}"
        parts.append(body + ".")
    else:
        parts.append("The athlete moves quickly.")
    parts.append("Then the camera shows the surroundings again.")
    return " ".join(parts)
