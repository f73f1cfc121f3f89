"""`activitynet12-vd`: thumos14-vd's generator on ActivityNet1.2's real structure (100 classes),
its class scripts, its seeded subset, and the real ground truth's edge cases (zero-length
segments and segments past the end), which stay in the ground truth as the real set has them."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wtal_data.canonical import DatasetError, FeatureStore, load_ground_truth
from wtal_data.ingest_wtalc import load_wtalc_annotations
from wtal_data.synthetic import describe, generate_dataset, load_config, select_subset_videos
from wtal_data.synthetic.scripts import SynthConfigError
from wtal_data.synthetic.subsets import subset_spec, zero_length_videos

ROOT = Path(__file__).resolve().parents[1]
ANET_CONFIG = ROOT / "config" / "synthetic_anet.yaml"
ANET = ROOT / "data/activitynet12/raw/ActivityNet1.2-Annotations"


@pytest.fixture(scope="module")
def cfg():
    return load_config(ANET_CONFIG)


@pytest.fixture(scope="module")
def real():
    """ActivityNet1.2's canonical ground truth (annotations only), as `ingest --no-features` writes it."""
    return load_wtalc_annotations(ANET, "activitynet12")


def test_the_real_ground_truth_keeps_its_edge_cases(real):
    """10 zero-length segments and 185 that end past the video (by <= 0.35 s; 4 past the snippet
    grid too) are in the official ground truth: canonical keeps them unchanged."""
    zero = [
        (v, a["segment"])
        for v, e in real["database"].items()
        for a in e["annotations"]
        if a["segment"][1] <= a["segment"][0]
    ]
    past = [
        (v, a["segment"][1] - e["duration"])
        for v, e in real["database"].items()
        for a in e["annotations"]
        if a["segment"][1] > e["duration"]
    ]
    assert len(zero) == 10 and len(past) == 185 and max(d for _, d in past) < 0.36
    assert len(zero_length_videos(real)) == 10 and real["family"] == "activitynet"


def test_config_scripts_every_real_class_with_one_unique_key(cfg, real):
    base = load_config(ROOT / "config" / "synthetic_vd.yaml")
    assert sorted(cfg["classes"]) == sorted(real["classes"])  # none of THUMOS14's scripts carried along
    assert cfg["dataset_names"] == {"full": "activitynet12-vd-full", "subset": "activitynet12-vd"}
    for key in ("snippet", "structure", "video_facts"):
        assert cfg[key] == base[key]
    assert cfg["features"] == base["features"]  # calibration 2's noise and class look, 256-d
    assert cfg["features"]["dim_per_modality"] == 128 and cfg["describer"]["subject"] == "person"
    users: dict[str, list[str]] = {}
    for name, script in cfg["classes"].items():
        assert sum(bool(p.get("key")) for p in script["phases"]) == 1, name
        assert len(script["context"]) == 2, name
        for p in script["phases"]:
            users.setdefault(p["word"], []).append(name)
    keys = {name: next(p["word"] for p in s["phases"] if p.get("key")) for name, s in cfg["classes"].items()}
    assert all(users[word] == [name] for name, word in keys.items())  # a key phase is its class's alone
    shared = {word: len(names) for word, names in users.items() if len(names) > 1}
    assert shared["run"] >= 10 and shared["play"] == 8 and len(shared) >= 30  # related classes share phases
    # no script word doubles as a background, fact or optional-phase word (they have states of their own)
    facts = cfg["video_facts"]
    others = set(cfg["background_words"]) | set(facts["optional_phases"]["words"])
    others |= {w for g in ("performer", "colour", "speed") for w in facts[g]["words"]}
    assert not others & (set(users) | {w for s in cfg["classes"].values() for w in s["context"]})


def test_every_word_has_a_glove_vector(cfg):
    from wtal_data.word_vectors import load_word_vectors

    words = {p["word"] for s in cfg["classes"].values() for p in s["phases"]}
    words |= {w for s in cfg["classes"].values() for w in s["context"]} | set(cfg["background_words"]) | {"person"}
    vectors = load_word_vectors("glove-6b-50d", restrict_to=words)
    assert sorted(w for w in words if w not in vectors) == []


def test_replace_takes_a_mapping_whole_and_names_bad_fields(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("a: {x: 1, y: 2}\nb: {x: 1}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nreplace: [a]\na: {z: 3}\nb: {y: 2}\n")
    from wtal_data.synthetic.scripts import _read_with_base

    assert _read_with_base(child, ()) == {"a": {"z": 3}, "b": {"x": 1, "y": 2}}
    child.write_text("extends: base.yaml\nreplace: [c]\na: {z: 3}\n")
    with pytest.raises(SynthConfigError, match="child.yaml: replace"):
        _read_with_base(child, ())


def test_subset_keeps_every_class_in_both_subsets_and_the_zero_length_videos(cfg, real):
    train, test, seed, keep = subset_spec(cfg)
    ids = select_subset_videos(real, train, test, seed, keep)
    assert ids == select_subset_videos(real, train, test, seed, keep)  # seeded
    assert ids != select_subset_videos(real, train, test, seed + 1, keep)
    assert set(zero_length_videos(real)) <= set(ids)
    db = real["database"]
    for subset, per_class in (("train", train), ("test", test)):
        counts = Counter(label for v in ids if db[v]["subset"] == subset for label in db[v]["labels"])
        assert set(counts) == set(real["classes"]) and min(counts.values()) >= per_class
        assert max(counts.values()) <= per_class + 2, subset  # multi-label videos count for both classes
    with pytest.raises(DatasetError, match="subset.train_per_class"):
        subset_spec({"_path": "x.yaml", "subset": {"train_per_class": 1, "test_per_class": 1, "seed": 0}})


def _anet_structure(cfg: dict) -> dict:
    """A hand-made ActivityNet-shaped structure with the real set's edge cases."""
    classes = ["Washing dishes", "Long jump", "Playing piano"]

    def video(subset, duration, label, segments):
        return {
            "subset": subset,
            "duration": duration,
            "fps": None,
            "labels": [label],
            "annotations": [{"label": label, "segment": s} for s in segments],
        }

    db = {
        "v_zero": video("train", 58.98, classes[0], [[0.0, 0.0]]),  # as video_887: nothing but an instant
        "v_mixed": video("train", 80.0, classes[1], [[19.9, 19.9], [30.0, 70.0]]),
        "v_past": video("test", 119.66, classes[2], [[10.0, 120.0]]),  # as video_7654: past the grid
    }
    for i, c in enumerate(classes):
        db[f"v_train_{i}"] = video("train", 90.0, c, [[5.0, 80.0]])  # one instance, 83 % of the video
        db[f"v_test_{i}"] = video("test", 60.0, c, [[2.0, 20.0], [25.0, 55.0]])
    return {
        "schema_version": 1,
        "dataset": "activitynet12",
        "family": "activitynet",
        "synthetic": False,
        "classes": classes,
        "snippet_seconds": 0.64,
        "database": db,
        "ambiguous": {},
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory, cfg):
    out = tmp_path_factory.mktemp("anet")
    structure = _anet_structure(cfg)
    generate_dataset(structure, cfg, out, size="full", seed=0, videos=False, progress=False)
    canonical = out / "canonical"
    return structure, load_ground_truth(canonical), json.loads((canonical / "scripts.json").read_text()), canonical


def test_generated_set_is_named_synthetic_and_of_the_activitynet_family(generated):
    structure, gt, scripts, canonical = generated
    assert gt["dataset"] == scripts["dataset"] == "activitynet12-vd-full" and gt["synthetic"] is True
    assert gt["family"] == "activitynet"  # the structure's: the trainer applies the ActivityNet defaults
    assert FeatureStore.open(canonical).feature_dim == 256
    for vid, entry in structure["database"].items():  # every segment, unchanged, edge cases included
        assert gt["database"][vid]["annotations"] == entry["annotations"], vid


def test_zero_length_segment_paints_nothing_and_stays_in_the_ground_truth(generated):
    _, gt, scripts, _ = generated
    zero = scripts["videos"]["v_zero"]
    assert zero["instances"] == [{"label": "Washing dishes", "segment": [0.0, 0.0], "amplitude": 0.0, "phases": []}]
    assert {e["kind"] for e in zero["events"]} == {"background"}  # no phase, no context
    assert zero.get("facts") == {}  # no performer: nothing of the class is seen
    mixed = scripts["videos"]["v_mixed"]
    assert mixed["instances"][0]["phases"] == [] and mixed["instances"][1]["phases"]
    assert mixed["facts"]["Long jump"]["count"] == 1  # the visible instance only
    # nothing but background around the instant 19.9 s: the real instance's context starts >= 26 s
    assert not [e for e in mixed["events"] if e["kind"] != "background" and e["start"] < 25.0]
    assert gt["database"]["v_zero"]["labels"] == ["Washing dishes"]  # still a video of its class
    text = describe(scripts, "v_zero", "Washing dishes", "complete", seed=0)
    assert "athlete" not in text and "person" in text


def test_segment_past_the_end_is_painted_to_the_grid_end(generated):
    _, gt, scripts, canonical = generated
    past = scripts["videos"]["v_past"]
    grid_end = past["num_snippets"] * 0.64
    assert past["num_snippets"] == math.ceil(119.66 * 25 / 16) and grid_end < 120.0
    assert gt["database"]["v_past"]["annotations"][0]["segment"] == [10.0, 120.0]  # unchanged
    phases = [e for e in past["events"] if e["kind"] == "phase"]
    assert phases[-1]["end"] == pytest.approx(grid_end) == past["events"][-1]["end"]  # clipped to the grid
    features = FeatureStore.open(canonical)["v_past"]
    assert features.shape[0] == past["num_snippets"] and np.isfinite(features).all()


def test_subset_size_needs_a_config_that_names_it(tmp_path):
    from tests.test_synthetic import make_structure

    with pytest.raises(DatasetError, match="dataset_names"):
        generate_dataset(make_structure(), load_config(ROOT / "config" / "synthetic.yaml"), tmp_path, size="subset")
