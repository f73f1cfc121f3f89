"""Which videos of a real structure a generated set uses: all, the demo's, or a seeded subset.

``subset`` exists for structures too large to train on a CPU in the workflow's budget
(ActivityNet1.2: 4,819 training videos, 1.3 M snippets).  It keeps what the protocol needs:
every class in both subsets (a class missing from training cannot be learned, one missing
from the test subset drops out of the mAP) and at least two training videos per class (the
base methods' sampler pairs same-class videos).  The videos are drawn per class at random,
not the shortest as for the demo, so their durations, instance counts and coverage follow
the real set's.  Each video's script and features are seeded by its id alone, so a video of
the subset is identical to the same video of the full set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..canonical import DatasetError
from .scripts import rng_for

SIZES = ("full", "demo", "subset")


def _classes_of(entry: Mapping[str, Any]) -> set[str]:
    return {a["label"] for a in entry.get("annotations", [])} | set(entry.get("labels", []))


def subset_spec(cfg: Mapping[str, Any]) -> tuple[int, int, int, bool]:
    """(train_per_class, test_per_class, seed, keep_zero_length) of the config's ``subset``
    section; errors name the field."""
    where = f"{cfg.get('_path', 'config')}: subset"
    spec = cfg.get("subset")
    if not isinstance(spec, Mapping):
        raise DatasetError(f"{where}: --size subset needs a 'subset' section (train_per_class, test_per_class, seed)")
    out = []
    for key, least in (("train_per_class", 2), ("test_per_class", 1), ("seed", 0)):
        value = spec.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise DatasetError(f"{where}.{key}: expected an integer >= {least}, got {value!r}")
        out.append(value)
    keep = spec.get("keep_zero_length", False)
    if not isinstance(keep, bool):
        raise DatasetError(f"{where}.keep_zero_length: expected true or false, got {keep!r}")
    return out[0], out[1], out[2], keep


def zero_length_videos(structure: Mapping[str, Any]) -> list[str]:
    """Videos with a zero-length segment (ActivityNet1.2 has 10, THUMOS14 none)."""
    return sorted(
        v
        for v, e in structure["database"].items()
        if any(float(a["segment"][1]) <= float(a["segment"][0]) for a in e.get("annotations", []))
    )


def select_subset_videos(
    structure: Mapping[str, Any], train_per_class: int, test_per_class: int, seed: int, keep_zero_length: bool = False
) -> list[str]:
    """Sorted ids: per subset and class (in the structure's class order), up to ``*_per_class``
    videos with that label drawn at random (seeded) among those not yet taken.

    ``keep_zero_length`` takes the videos with a zero-length segment first (they count towards
    their classes), so the generated set keeps that edge case of the real ground truth, which a
    draw of a quarter of the videos would mostly miss.  A class with fewer videos keeps all of
    them; a class with none in a subset is an error (the structure could not be scored or
    trained on it).  Multi-label videos count for every class they carry, so a class may end up
    with a few more videos than asked.
    """
    db = structure["database"]
    chosen: set[str] = set(zero_length_videos(structure)) if keep_zero_length else set()
    for subset, per_class in (("train", train_per_class), ("test", test_per_class)):
        rng = rng_for(seed, "subset", subset)
        pool = sorted(v for v, e in db.items() if e["subset"] == subset)
        for cls in structure["classes"]:
            have = sum(cls in _classes_of(db[v]) for v in chosen if db[v]["subset"] == subset)
            candidates = [v for v in pool if v not in chosen and cls in _classes_of(db[v])]
            if not candidates and not have:
                raise DatasetError(f"structure: class {cls!r} has no {subset} video; a subset cannot keep it")
            need = max(0, per_class - have)
            picks = rng.permutation(len(candidates))[:need]
            chosen.update(candidates[int(i)] for i in picks)
    return sorted(chosen)
