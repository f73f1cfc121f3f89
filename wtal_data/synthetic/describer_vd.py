"""The describer of video-dependent sets (``thumos14-vd``): descriptions that need the video.

The describer of :mod:`.describer` writes what the class's script says; a reader who knows
the class can complete it without the video.  Here every (video, class) also has *facts*
drawn for that video (``scripts.json`` ``videos.<id>.facts``, see
:func:`.scripts.draw_video_facts`) and rendered into its features: who performs (man,
woman, boy, girl), in which colour, how fast, which optional phases and in which order,
how many repetitions.  The complete description states them the way an MLLM would:

* **omissions**: each fact is left out with ``fact_omit_prob``; each phase or context word
  with ``omit_prob`` (as in :mod:`.describer`);
* **wrong words**: a fact is replaced with ``fact_wrong_prob`` by another word of its group
  (a count by one off); a phase word with ``wrong_prob`` by another class's word;
* **paraphrases**: a fact word is said as one of its ``synonyms`` (``adverbs`` for the
  manner inside a sentence), and sentences come from several templates;
* **varying length**: sentence order varies, and up to ``filler_max`` sentences that say
  nothing about the video are added.

Key sentences vary in wording too (more templates; with ``key_fact_prob`` they name the
performer).  Output is a pure function of (scripts, video, class, kind, seed, noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
KEY_TEMPLATES = (
    "The person does {acts} in this video.",
    "In this clip the athlete performs {acts}.",
    "The action shows {acts}.",
    "We see {acts}.",
    "The main movement is {acts}.",
    "Here {who} performs {acts}.",
    "This video is about {acts}.",
    "The key moment is {acts}.",
)
OPENINGS = ("The video starts", "At first we see the scene", "The clip begins", "The footage opens")
LOOK_TEMPLATES = (
    "The athlete is a {who} in {colour}.",
    "A {who} wearing {colour} clothes performs.",
    "We see a {who} dressed in {colour}.",
    "The performer is a {who} with a {colour} shirt.",
)
WHO_TEMPLATES = ("The athlete is a {who}.", "A {who} performs.", "The performer is a {who}.")
COLOUR_TEMPLATES = ("The athlete wears {colour}.", "The clothes are {colour}.", "The performer is dressed in {colour}.")
SPEED_TEMPLATES = ("The movement is {speed}.", "The pace is {speed}.", "Overall it looks {speed}.")
COUNT_TEMPLATES = (
    "The action is repeated {count} times.",
    "There are {count} attempts in the video.",
    "We see {count} tries in total.",
)
COUNT_ONCE = ("It happens only once.", "There is one attempt.", "We see a single try.")
COUNT_MANY = ("The action is repeated many times.", "There are many attempts.", "We see numerous tries.")
FILLERS = (
    "Then the camera shows the surroundings again.",
    "The camera follows the action.",
    "The light is bright.",
    "People watch from the side.",
    "The footage is a little blurry.",
    "The weather looks fine.",
    "The picture is clear.",
)


def _join(words: list[str]) -> str:
    if not words:
        return "a movement"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _sequence(steps: list[str], adverb: str | None, rng: np.random.Generator) -> str:
    """One sentence listing the phases in order, in one of three wordings."""
    how = f" {adverb}" if adverb else ""
    if not steps:
        return f"The athlete moves{how or ' quickly'}."
    form = int(rng.integers(3))
    if form == 0 or len(steps) == 1:
        body = f"First the athlete{how} does a {steps[0]}"
        body += "".join(f", then a {w}" for w in steps[1:-1])
        return body + (f", and finally a {steps[-1]}." if len(steps) > 1 else ".")
    if form == 1:
        body = f"It begins with a {steps[0]}"
        body += "".join(f", followed by a {w}" for w in steps[1:-1])
        return body + f", and{how} ends with a {steps[-1]}."
    return f"The athlete{how} goes through a " + _join(steps) + "."


class _FactVoice:
    """Says (or omits, or gets wrong) one fact, with a paraphrase."""

    def __init__(self, scripts: Mapping[str, Any], params: Mapping[str, Any], rng: np.random.Generator):
        self.groups = {g: list(s["words"]) for g, s in scripts["video_facts"].items() if "words" in s}
        self.synonyms = params.get("synonyms", {})
        self.adverbs = params.get("adverbs", {})
        self.omit = float(params.get("fact_omit_prob", 0.0))
        self.wrong = float(params.get("fact_wrong_prob", 0.0))
        self.rng = rng

    def _pick(self, options: list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def choose(self, group: str, word: str) -> str | None:
        """The word the describer believes in: None (omitted), a wrong one, or the true one."""
        u = self.rng.random()
        if u < self.omit:
            return None
        if u < self.omit + self.wrong:
            return self._pick([w for w in self.groups[group] if w != word])
        return word

    def say(self, word: str) -> str:
        return self._pick(list(self.synonyms.get(word, [word])))

    def adverb(self, word: str) -> str:
        return self._pick(list(self.adverbs.get(word, [word])))

    def count(self, n: int) -> int | None:
        u = self.rng.random()
        if u < self.omit:
            return None
        if u < self.omit + self.wrong:
            return max(1, n + (1 if self.rng.random() < 0.5 or n == 1 else -1))
        return n


def _count_sentence(n: int, voice: _FactVoice) -> str:
    if n == 1:
        return voice._pick(list(COUNT_ONCE))
    if n >= len(NUMBER_WORDS):
        return voice._pick(list(COUNT_MANY))
    return voice._pick(list(COUNT_TEMPLATES)).format(count=NUMBER_WORDS[n])


def describe_vd(
    scripts: Mapping[str, Any],
    video_id: str,
    class_name: str,
    kind: str,
    seed: int,
    params: Mapping[str, Any],
    phases: list[str],
    context: list[str],
    noisy,
    rng: np.random.Generator,
) -> str:
    """Key sentence or complete description of a video-dependent set (see the module docstring).

    ``phases``/``context``: what the video shows for the class (optional phases included,
    in order); ``noisy``: the phase-word noise of :mod:`.describer`; ``rng``: its seeded
    generator, shared so one seed gives one text.
    """
    fact = scripts["videos"].get(video_id, {}).get("facts", {}).get(class_name)
    voice = _FactVoice(scripts, params, rng)
    script = {p["word"]: p for p in scripts["classes"][class_name]["phases"]}
    if kind == "key":
        n = int(params.get("key_phases", 2))
        own = [w for w in phases if w in script]
        ranked = sorted(own, key=lambda w: (not script[w]["key"], -script[w]["weight"], own.index(w)))
        chosen = [w for w in own if w in ranked[:n]]
        template = KEY_TEMPLATES[int(rng.integers(len(KEY_TEMPLATES)))]
        who = "the athlete"
        if fact is not None and rng.random() < float(params.get("key_fact_prob", 0.0)):
            said = voice.choose("performer", fact["performer"])
            who = f"a {voice.say(said)}" if said else who
        return template.format(acts=_join([f"a {w}" for w in noisy(chosen)]), who=who)

    sentences: list[str] = []
    adverb = None
    if fact is not None:
        who, colour = voice.choose("performer", fact["performer"]), voice.choose("colour", fact["colour"])
        if who and colour:
            sentences.append(voice._pick(list(LOOK_TEMPLATES)).format(who=voice.say(who), colour=voice.say(colour)))
        elif who:
            sentences.append(voice._pick(list(WHO_TEMPLATES)).format(who=voice.say(who)))
        elif colour:
            sentences.append(voice._pick(list(COLOUR_TEMPLATES)).format(colour=voice.say(colour)))
        speed = voice.choose("speed", fact["speed"])
        if speed and rng.random() < 0.5:
            adverb = voice.adverb(speed)
        elif speed:
            sentences.append(voice._pick(list(SPEED_TEMPLATES)).format(speed=voice.say(speed)))
        count = voice.count(int(fact["count"]))
        if count is not None:
            sentences.append(_count_sentence(count, voice))
    ctx_prob = float(params.get("context_prob", 0.7))
    shown = noisy([w for w in context if rng.random() < ctx_prob])
    steps = _sequence(noisy(phases), adverb, rng)
    fillers = int(rng.integers(int(params.get("filler_max", 0)) + 1))
    extra = [FILLERS[i] for i in rng.permutation(len(FILLERS))[:fillers]]
    # the facts come before or after the sequence; fillers anywhere after the opening
    body = [steps, *sentences] if rng.random() < 0.5 else [*sentences, steps]
    for sentence in extra:
        body.insert(int(rng.integers(len(body) + 1)), sentence)
    if shown:
        body.insert(0, f"{OPENINGS[int(rng.integers(len(OPENINGS)))]} near the {' and the '.join(shown)}.")
    return " ".join(body)
