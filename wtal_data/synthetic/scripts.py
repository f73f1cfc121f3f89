"""What each synthetic video shows: class scripts, per-video timelines, ``scripts.json``.

A class is a *script*: its phases (sub-actions) in temporal order, each named by a
word, plus context words (class-correlated background such as the pool before a dive).
Given a real ground truth (THUMOS14's videos, durations and segments), every video is
laid out on a frame timeline at the feature frame rate (25 fps):

* generic background shots (``background_words``: crowd, replay, walk, ...);
* class context just before / after each ground-truth instance (not the action);
* inside each ground-truth segment, the class's phases, with Dirichlet-jittered
  durations (a non-key phase may be absent: a camera cut).

Later layers overwrite earlier ones, so the ground truth stays exactly the real one.
The timeline, run-length encoded, is stored in ``scripts.json``; the feature generator,
the renderer and the describer all read it, so text, video and features tell one story.

``scripts.json`` schema::

    {
      "schema_version": 1, "dataset": "thumos14-synth", "synthetic": true, "seed": 0,
      "word_vectors": "glove-6b-50d",
      "describer": {"omit_prob": 0.1, "wrong_prob": 0.05, "key_phases": 2, "context_prob": 0.7},
      "background_words": ["crowd", ...],
      "classes": {"<Class>": {"phases": [{"word": "run", "weight": 1.5, "key": false,
                                           "shared_with": ["HighJump", ...]}, ...],
                               "context": ["track", "field"]}},
      "videos": {"<video_id>": {
          "subset": "train", "duration": 170.2, "num_snippets": 266, "labels": ["HighJump"],
          "instances": [{"label": "HighJump", "segment": [12.3, 15.0], "amplitude": 1.1,
                         "phases": ["run", "arch"]}],          # phases present, in order
          "events": [{"start": 0.0, "end": 4.12, "kind": "background" | "context" | "phase",
                      "label": null | "<Class>", "word": "crowd", "instance": -1 | i}]
      }}
    }

Event times are seconds on the 25 fps frame grid; events tile [0, num_snippets * 0.64).
Every ground-truth segment is an instance, unchanged; a zero-length one shows nothing
(``"amplitude": 0.0, "phases": []``), one past the end is painted up to the grid's end.

Video-dependent sets (``thumos14-vd``, a config with ``video_facts``) add the config's
``video_facts`` section at top level and, per video, ``"facts": {"<Class>": {"performer":
"woman", "colour": "red", "speed": "fast", "optional": ["wave"], "count": 3}}``; the
optional phases also appear in ``instances[].phases`` and the events.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wtal_common.errors import ConfigError

from ..canonical import DatasetError

SCRIPTS_FILE = "scripts.json"
KINDS = ("background", "context", "phase")


class SynthConfigError(DatasetError, ConfigError):
    """The generator's config file is malformed; the message names the file and field.

    A :class:`ConfigError` (bad settings) that is also a :class:`DatasetError`, so the
    synthetic generator's callers handle one error type for its config and its data."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read ``config/synthetic.yaml`` and check the fields the generator needs."""
    path = Path(path)
    cfg = _read_with_base(path, seen=())
    for key in ("seed", "snippet", "features", "structure", "demo", "describer", "classes", "background_words"):
        if key not in cfg:
            raise SynthConfigError(f"{path}: missing field '{key}'")
    for name, script in cfg["classes"].items():
        phases = script.get("phases") if isinstance(script, dict) else None
        if not phases:
            raise SynthConfigError(f"{path}: classes.{name}: needs a non-empty 'phases' list")
        for i, phase in enumerate(phases):
            if "word" not in phase or not (isinstance(phase.get("weight"), (int, float)) and phase["weight"] > 0):
                raise SynthConfigError(f"{path}: classes.{name}.phases[{i}]: needs 'word' and a positive 'weight'")
        if sum(bool(p.get("key")) for p in phases) < 1:
            raise SynthConfigError(f"{path}: classes.{name}: at least one phase must be 'key: true'")
        if not script.get("context"):
            raise SynthConfigError(f"{path}: classes.{name}: needs a non-empty 'context' list")
    if "video_facts" in cfg:
        check_video_facts(cfg["video_facts"], path)
    cfg["_path"] = str(path)
    return cfg


def _read_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """One YAML mapping; with ``extends: FILE`` (relative to it), that file's settings under its own.

    A second benchmark shares the frozen class scripts and most settings of the first, so
    its config names only what differs.  Mappings merge key by key; other values replace.
    ``replace: [field, ...]`` takes those top-level mappings whole from this file: a set on
    another real structure (``activitynet12-vd``) keeps the noise model but not the other
    set's class scripts, which a key-by-key merge would carry along.
    """
    if not path.exists():
        raise SynthConfigError(f"{path}: synthetic config not found")
    if path.resolve() in seen:
        raise SynthConfigError(f"{path}: 'extends' loops back to itself")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SynthConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise SynthConfigError(f"{path}: expected a mapping at top level")
    base = cfg.pop("extends", None)
    replace = cfg.pop("replace", [])
    if base is None:
        return cfg
    if not (isinstance(replace, list) and all(isinstance(k, str) for k in replace)):
        raise SynthConfigError(f"{path}: replace: expected a list of top-level field names")
    missing = [key for key in replace if key not in cfg]
    if missing:
        raise SynthConfigError(f"{path}: replace: {missing} are not fields of this file")
    merged = _merge(_read_with_base(path.parent / str(base), (*seen, path.resolve())), cfg)
    merged.update({key: cfg[key] for key in replace})
    return merged


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


FACT_GROUPS = ("performer", "colour", "speed")


def check_video_facts(facts: Any, path: Path) -> None:
    """The ``video_facts`` section of a video-dependent config (see config/synthetic_vd.yaml)."""
    if not isinstance(facts, dict):
        raise SynthConfigError(f"{path}: video_facts: expected a mapping")
    for group in FACT_GROUPS:
        spec = facts.get(group)
        if not isinstance(spec, dict) or not spec.get("words") or len(spec["words"]) < 2:
            raise SynthConfigError(f"{path}: video_facts.{group}: needs a 'words' list of at least 2 words")
    optional = facts.get("optional_phases")
    if not isinstance(optional, dict) or not optional.get("words"):
        raise SynthConfigError(f"{path}: video_facts.optional_phases: needs a 'words' list")
    probs = optional.get("count_probs")
    if not probs or abs(sum(probs) - 1.0) > 1e-6 or len(probs) > len(optional["words"]) + 1:
        raise SynthConfigError(
            f"{path}: video_facts.optional_phases.count_probs: probabilities of 0, 1, ... optional phases, "
            f"summing to 1, at most len(words) + 1 entries"
        )


def stable_seed(*parts: Any) -> int:
    """A 64-bit seed from strings/ints, identical across runs and machines (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(seed: int, *parts: Any) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stable_seed(*parts)]))


def num_snippets(duration: float, feature_fps: float, frames_per_snippet: int) -> int:
    """Feature rows of a video: ceil(duration * fps / frames_per_snippet) (I3D convention)."""
    return max(1, math.ceil(duration * feature_fps / frames_per_snippet - 1e-9))


def class_scripts(cfg: Mapping[str, Any], classes: list[str]) -> dict[str, Any]:
    """The ``classes`` part of scripts.json, with each phase's sharing classes listed."""
    missing = [c for c in classes if c not in cfg["classes"]]
    if missing:
        raise SynthConfigError(f"{cfg.get('_path', 'config')}: no script for class(es) {missing} of the structure")
    users: dict[str, list[str]] = {}
    for name in classes:
        for phase in cfg["classes"][name]["phases"]:
            users.setdefault(phase["word"], []).append(name)
    out = {}
    for name in classes:
        script = cfg["classes"][name]
        out[name] = {
            "phases": [
                {
                    "word": p["word"],
                    "weight": float(p["weight"]),
                    "key": bool(p.get("key", False)),
                    "shared_with": [c for c in users[p["word"]] if c != name],
                }
                for p in script["phases"]
            ],
            "context": list(script["context"]),
        }
        if "video_facts" in cfg:
            # optional phases a performer may add (not class-specific, so text cannot infer them)
            out[name]["optional"] = list(cfg["video_facts"]["optional_phases"]["words"])
    return out


@dataclass
class StateTable:
    """Every distinct (kind, label, word) a frame can show; the feature model has one mean per state."""

    states: list[tuple[str, str | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(self.states)}

    @classmethod
    def build(cls, scripts: Mapping[str, Any], background_words: list[str]) -> StateTable:
        states: list[tuple[str, str | None, str]] = [("background", None, w) for w in background_words]
        for name, script in scripts.items():
            states += [("context", name, w) for w in script["context"]]
            states += [("phase", name, p["word"]) for p in script["phases"]]
            states += [("phase", name, w) for w in script.get("optional", [])]
        return cls(states)

    def __len__(self) -> int:
        return len(self.states)


@dataclass
class Timeline:
    """One video at frame resolution: state index and amplitude per 25 fps frame."""

    state: np.ndarray  # int32 (F,)
    amplitude: np.ndarray  # float32 (F,)
    instance: np.ndarray  # int32 (F,), -1 outside phases
    facts: dict[str, Any] | None = None  # per class: what the performer looks like (video-dependent sets)


def _paint(timeline: Timeline, start: float, end: float, fps: float, state: int, amp: float, inst: int) -> None:
    total = timeline.state.shape[0]
    a = min(total, max(0, int(round(start * fps))))
    b = min(total, max(a, int(round(end * fps))))
    timeline.state[a:b] = state
    timeline.amplitude[a:b] = amp
    timeline.instance[a:b] = inst


def build_video(
    video_id: str,
    entry: Mapping[str, Any],
    scripts: Mapping[str, Any],
    table: StateTable,
    cfg: Mapping[str, Any],
    seed: int,
) -> tuple[dict[str, Any], Timeline]:
    """Lay out one video's script on the frame grid; return its scripts.json entry and timeline."""
    snip = cfg["snippet"]
    fps, fps_snip = float(snip["feature_fps"]), int(snip["frames_per_snippet"])
    structure, amp_sigma = cfg["structure"], float(cfg["features"]["instance_amplitude_sigma"])
    duration = float(entry["duration"])
    T = num_snippets(duration, fps, fps_snip)
    frames = T * fps_snip
    rng = rng_for(seed, "script", video_id)
    tl = Timeline(np.zeros(frames, np.int32), np.ones(frames, np.float32), np.full(frames, -1, np.int32))
    end_all = frames / fps

    # 1. generic background shots
    bg_words = cfg["background_words"]
    t = 0.0
    shot = structure["background_shot"]
    while t < end_all:
        length = rng.uniform(shot["min"], shot["max"])
        word = bg_words[rng.integers(len(bg_words))]
        _paint(tl, t, t + length, fps, table.index[("background", None, word)], 1.0, -1)
        t += length

    annotations = sorted(entry.get("annotations", []), key=lambda a: (float(a["segment"][0]), float(a["segment"][1])))
    # Zero-length segments (10 in ActivityNet1.2, none in THUMOS14) stay in the ground truth as
    # the real set has them, but show nothing: no phase, no context, no facts.  Segments past
    # the end are painted up to the snippet grid's end (_paint clips), as features would be.
    visible = [a for a in annotations if float(a["segment"][1]) > float(a["segment"][0])]
    # 2. class context around every instance (painted before any phase: never hides an action)
    for ann in visible:
        label, (s, e) = ann["label"], (float(ann["segment"][0]), float(ann["segment"][1]))
        context = scripts[label]["context"]
        for side in ("context_before", "context_after"):
            spec = structure[side]
            if rng.random() >= spec["prob"]:
                continue
            length = rng.uniform(spec["min"], spec["max"])
            word = context[rng.integers(len(context))]
            amp = float(np.exp(amp_sigma * rng.standard_normal()))
            lo, hi = (s - length, s) if side == "context_before" else (e, e + length)
            _paint(tl, lo, hi, fps, table.index[("context", label, word)], amp, -1)

    # 3. phases inside every ground-truth segment
    instances = []
    conc = float(structure["phase_duration_concentration"])
    facts = draw_video_facts(video_id, visible, cfg, seed) if "video_facts" in cfg else None
    for i, ann in enumerate(annotations):
        label, (s, e) = ann["label"], (float(ann["segment"][0]), float(ann["segment"][1]))
        if e <= s:
            instances.append({"label": label, "segment": [s, e], "amplitude": 0.0, "phases": []})
            continue
        phases = [p for p in scripts[label]["phases"] if p["key"] or rng.random() >= structure["skip_phase_prob"]]
        if facts is not None:
            phases = with_video_facts(phases, facts[label], cfg["video_facts"])
        weights = np.array([p["weight"] for p in phases], np.float64)
        shares = rng.dirichlet(conc * weights / weights.sum() * len(weights))
        amp = float(np.exp(amp_sigma * rng.standard_normal()))
        bounds = s + (e - s) * np.concatenate([[0.0], np.cumsum(shares)])
        for p, a, b in zip(phases, bounds[:-1], bounds[1:]):
            _paint(tl, a, b, fps, table.index[("phase", label, p["word"])], amp, i)
        instances.append(
            {"label": label, "segment": [s, e], "amplitude": round(amp, 4), "phases": [p["word"] for p in phases]}
        )

    record = {
        "subset": entry["subset"],
        "duration": duration,
        "num_snippets": T,
        "labels": sorted(set(entry.get("labels", [])) | {a["label"] for a in annotations}),
        "instances": instances,
        "events": _events(tl, table, fps),
    }
    if facts is not None:
        record["facts"] = facts
        tl.facts = facts
    return record, tl


def draw_video_facts(
    video_id: str, annotations: list[Mapping[str, Any]], cfg: Mapping[str, Any], seed: int
) -> dict[str, dict[str, Any]]:
    """Per class of the video: who performs it and how (video-dependent sets only).

    Drawn from a generator of its own, so the rest of the script is drawn as in the set
    without facts.  ``annotations``: the instances the video shows (zero-length ones left
    out by the caller: a class seen nowhere has no performer); ``count`` is the number of
    them of the class (the real structure's repetitions).  Every instance of a class shows the same facts: one
    performer, one manner, one habit of optional phases per video.
    """
    spec = cfg["video_facts"]
    rng = rng_for(seed, "facts", video_id)
    out: dict[str, dict[str, Any]] = {}
    for label in sorted({a["label"] for a in annotations}):
        fact: dict[str, Any] = {g: spec[g]["words"][rng.integers(len(spec[g]["words"]))] for g in FACT_GROUPS}
        optional = spec["optional_phases"]
        k = int(rng.choice(len(optional["count_probs"]), p=optional["count_probs"]))
        fact["optional"] = [optional["words"][j] for j in rng.permutation(len(optional["words"]))[:k]]
        fact["count"] = sum(a["label"] == label for a in annotations)
        out[label] = fact
    return out


def with_video_facts(
    phases: list[Mapping[str, Any]], fact: Mapping[str, Any], spec: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """An instance's phases with the performer's optional phases (in their order) before the key
    phase, and the key phase's relative duration scaled by the manner (fast: a short key phase)."""
    factor = float(spec["speed"].get("key_duration_factor", {}).get(fact["speed"], 1.0))
    weight = float(spec["optional_phases"]["weight"])
    out: list[Mapping[str, Any]] = []
    inserted = False
    for p in phases:
        if p["key"] and not inserted:
            out += [{"word": w, "weight": weight, "key": False} for w in fact["optional"]]
            p = {**p, "weight": float(p["weight"]) * factor}
            inserted = True
        out.append(p)
    return out


def _events(tl: Timeline, table: StateTable, fps: float) -> list[dict[str, Any]]:
    """Run-length encode the timeline (state and instance) into events in seconds."""
    key = tl.state.astype(np.int64) * 100_003 + tl.instance
    change = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [key.shape[0]]])
    events = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        kind, label, word = table.states[int(tl.state[a])]
        events.append(
            {
                "start": round(a / fps, 4),
                "end": round(b / fps, 4),
                "kind": kind,
                "label": label,
                "word": word,
                "instance": int(tl.instance[a]),
            }
        )
    return events


def event_at(events: list[Mapping[str, Any]], t: float) -> Mapping[str, Any]:
    """The event showing at time ``t`` (seconds); the last one past the end."""
    lo, hi = 0, len(events) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if events[mid]["end"] <= t:
            lo = mid + 1
        else:
            hi = mid
    return events[lo]
