"""Behaviour of the synthetic benchmark generator (thumos14-synth / demo), on a hand-made structure."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from wtal_data.canonical import FeatureStore, load_ground_truth, write_ground_truth
from wtal_data.synthetic import add_synth_arguments, describe, generate_dataset, load_config, run_synth
from wtal_data.synthetic.build import select_demo_videos
from wtal_data.synthetic.scripts import event_at

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "synthetic.yaml"
CLASSES = ["Diving", "GolfSwing", "HighJump", "LongJump"]


def make_structure(n_per_class: int = 2, seed: int = 0) -> dict:
    """A small real-shaped canonical ground truth (not read from any real data set)."""
    rng = np.random.default_rng(seed)
    db = {}
    for subset in ("train", "test"):
        for ci, cls in enumerate(CLASSES):
            for k in range(n_per_class):
                vid = f"video_{subset}_{ci}{k:03d}"
                duration = float(rng.uniform(20, 45))
                anns, t = [], float(rng.uniform(2, 5))
                while t + 6 < duration:
                    length = float(rng.uniform(1.5, 5.0))
                    anns.append({"label": cls, "segment": [round(t, 2), round(t + length, 2)]})
                    t += length + float(rng.uniform(3, 9))
                db[vid] = {
                    "subset": subset,
                    "duration": round(duration, 3),
                    "fps": 30.0,
                    "labels": [cls],
                    "annotations": anns,
                }
    return {
        "schema_version": 1,
        "dataset": "thumos14",
        "synthetic": False,
        "classes": CLASSES,
        "snippet_seconds": 0.64,
        "database": db,
        "ambiguous": {},
    }


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def structure():
    return make_structure()


@pytest.fixture(scope="module")
def generated(tmp_path_factory, cfg, structure):
    out = tmp_path_factory.mktemp("synth")
    summary = generate_dataset(structure, cfg, out, size="full", seed=0, videos=False, progress=False)
    return out, summary


def test_structure_is_kept_and_marked_synthetic(generated, structure):
    out, summary = generated
    gt = load_ground_truth(out / "canonical")
    assert gt["synthetic"] is True and gt["dataset"] == "thumos14-synth"
    assert gt["classes"] == CLASSES
    assert set(gt["database"]) == set(structure["database"])
    for vid, entry in structure["database"].items():
        got = gt["database"][vid]
        assert got["subset"] == entry["subset"] and got["duration"] == entry["duration"]
        assert sorted(map(tuple, (a["segment"] for a in got["annotations"]))) == sorted(
            map(tuple, (a["segment"] for a in entry["annotations"]))
        )
    store = FeatureStore.open(out / "canonical")
    for vid, entry in structure["database"].items():
        assert store[vid].shape == (math.ceil(entry["duration"] * 25 / 16), 2048)
        assert store[vid].dtype == np.float32 and np.isfinite(store[vid]).all()
    assert summary["snippets"] == sum(math.ceil(e["duration"] * 25 / 16) for e in structure["database"].values())


def test_scripts_phases_inside_segments_context_outside(generated, cfg):
    out, _ = generated
    scripts = json.loads((out / "canonical" / "scripts.json").read_text())
    assert "run" in [p["word"] for p in scripts["classes"]["HighJump"]["phases"]]
    run = next(p for p in scripts["classes"]["LongJump"]["phases"] if p["word"] == "run")
    assert "HighJump" in run["shared_with"]
    assert scripts["describer"] == cfg["describer"]
    saw_context = False
    for rec in scripts["videos"].values():
        ev = rec["events"]
        assert ev[0]["start"] == 0.0
        assert all(a["end"] == b["start"] for a, b in zip(ev, ev[1:]))
        assert ev[-1]["end"] == pytest.approx(rec["num_snippets"] * 0.64)
        segs = [inst["segment"] for inst in rec["instances"]]
        for e in ev:
            mid = 0.5 * (e["start"] + e["end"])
            inside = any(s - 0.04 <= mid <= t + 0.04 for s, t in segs)
            if e["kind"] == "phase":
                assert inside and e["label"] in rec["labels"]
            elif e["kind"] == "context":
                saw_context = True
                assert not inside and e["word"] in scripts["classes"][e["label"]]["context"]
    assert saw_context


def test_same_seed_same_bytes_other_seed_differs(tmp_path, cfg, structure, generated):
    out, _ = generated
    generate_dataset(structure, cfg, tmp_path / "a", size="full", seed=0, videos=False, progress=False)
    generate_dataset(structure, cfg, tmp_path / "b", size="full", seed=1, videos=False, progress=False)
    ref = (out / "canonical" / "features.npy").read_bytes()
    assert (tmp_path / "a" / "canonical" / "features.npy").read_bytes() == ref
    assert (tmp_path / "b" / "canonical" / "features.npy").read_bytes() != ref
    assert (tmp_path / "a" / "canonical" / "scripts.json").read_bytes() == (
        out / "canonical" / "scripts.json"
    ).read_bytes()


def test_demo_is_a_deterministic_subset_with_same_scripts(tmp_path, cfg, structure, generated):
    out, _ = generated
    assert len(select_demo_videos(structure, 1, 1)) == 2 * len(CLASSES)
    counts = int(cfg["demo"]["train_per_class"]), int(cfg["demo"]["test_per_class"])
    chosen = select_demo_videos(structure, *counts)
    assert chosen == select_demo_videos(structure, *counts)
    summary = generate_dataset(structure, cfg, tmp_path / "demo", size="demo", seed=0, videos=False, progress=False)
    gt = load_ground_truth(tmp_path / "demo" / "canonical")
    assert gt["dataset"] == "demo" and sorted(gt["database"]) == chosen and summary["videos"] == len(chosen)
    demo, full = FeatureStore.open(tmp_path / "demo" / "canonical"), FeatureStore.open(out / "canonical")
    full_gt = load_ground_truth(out / "canonical")
    narrow = int(cfg["demo"]["dim_per_modality"])
    assert demo.feature_dim == 2 * narrow < full.feature_dim
    assert demo.modalities == {"rgb": (0, narrow), "flow": (narrow, 2 * narrow)}
    for vid in chosen:
        # Same scripts, segments and snippet counts as in the full set; narrower features.
        assert gt["database"][vid]["annotations"] == full_gt["database"][vid]["annotations"]
        assert demo[vid].shape == (full[vid].shape[0], 2 * narrow)


def test_text_carries_information_about_features(generated, cfg):
    """A phase's snippets align with its own word's projection more than with other words'."""
    from wtal_data.synthetic.generate import FeatureModel
    from wtal_data.synthetic.scripts import StateTable, class_scripts
    from wtal_data.word_vectors import load_word_vectors

    out, _ = generated
    scripts = json.loads((out / "canonical" / "scripts.json").read_text())
    table = StateTable.build(class_scripts(cfg, CLASSES), cfg["background_words"])
    words = sorted({w for _, _, w in table.states})
    vectors = load_word_vectors("glove-6b-50d", restrict_to=words)
    model = FeatureModel.build(cfg, table, CLASSES, 0, vectors)
    V = np.stack([vectors.get(w) / np.linalg.norm(vectors.get(w)) for w in words])
    flow_dirs = V @ model.projection[1].T  # (words, 1024): P_flow w
    store = FeatureStore.open(out / "canonical")
    hits = total = 0
    for vid, rec in scripts["videos"].items():
        x = np.asarray(store[vid])[:, 1024:]
        for t in range(rec["num_snippets"]):
            e = event_at(rec["events"], (t + 0.5) * 0.64)
            if e["kind"] == "phase":
                hits += int(words[int(np.argmax(x[t] @ flow_dirs.T))] == e["word"])
                total += 1
    assert total > 50 and hits / total > 5.0 / len(words)  # far above chance ...
    assert hits / total < 0.95  # ... but not trivially clean


def test_describer_seeded_key_and_complete(generated):
    out, _ = generated
    scripts = json.loads((out / "canonical" / "scripts.json").read_text())
    vid = next(v for v, r in scripts["videos"].items() if "LongJump" in r["labels"])
    clean = {"omit_prob": 0.0, "wrong_prob": 0.0}
    key = describe(scripts, vid, "LongJump", "key", seed=0, noise=clean)
    assert key == describe(scripts, vid, "LongJump", "key", seed=0, noise=clean)
    assert "landing" in key and key.count(".") == 1
    full = describe(scripts, vid, "LongJump", "complete", seed=0, noise=clean)
    seen = [w for inst in scripts["videos"][vid]["instances"] for w in inst["phases"]]
    shown = [w for w in ("run", "takeoff", "landing") if w in seen]
    positions = [full.index(f"a {w}") for w in shown]
    assert positions == sorted(positions)
    noisy = {"omit_prob": 0.3, "wrong_prob": 0.4}
    variants = {describe(scripts, vid, "LongJump", "complete", seed=s, noise=noisy) for s in range(8)}
    assert len(variants) > 1
    own = {"run", "takeoff", "landing", "track", "sand"}
    wrong = {w.strip(".,") for text in variants for w in text.split()} - set(
        full.replace(".", "").replace(",", "").split()
    )
    assert wrong - own  # some substituted words come from other classes or background
    assert describe(scripts, vid, "LongJump", "complete", seed=0, noise=0.0) == full  # a number sets both
    with pytest.raises(ValueError):
        describe(scripts, vid, "LongJump", "summary", seed=0)


def test_rendered_mp4_decodes_with_decord(tmp_path, cfg):
    decord = pytest.importorskip("decord")
    structure = make_structure(n_per_class=1)
    generate_dataset(structure, cfg, tmp_path, size="demo", seed=0, videos=True, progress=False)
    scripts = json.loads((tmp_path / "canonical" / "scripts.json").read_text())
    fps = cfg["demo"]["render_fps"]
    for vid, rec in list(scripts["videos"].items())[:3]:
        reader = decord.VideoReader(str(tmp_path / "videos" / f"{vid}.mp4"))
        assert len(reader) == round(rec["duration"] * fps)
        assert reader.get_avg_fps() == pytest.approx(fps, rel=1e-3)
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
        assert frames.shape[1:] == (64, 64, 3)
        words = [event_at(rec["events"], (i + 0.5) / fps)["word"] for i in range(len(reader))]
        i, j = next((i, j) for i in range(len(words)) for j in range(i + 1, len(words)) if words[i] != words[j])
        assert np.abs(frames[i].astype(int) - frames[j].astype(int)).mean() > 5
    assert not list((tmp_path / "videos").glob(".*"))  # no temporary files left behind


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_synth_arguments(parser)
    return run_synth(parser.parse_args(argv))


def test_cli_runs_and_reports_bad_input(tmp_path, structure, capsys):
    write_ground_truth(tmp_path / "real", structure)
    rc = _cli(
        [
            "--config",
            str(CONFIG),
            "--size",
            "demo",
            "--no-videos",
            "--structure",
            str(tmp_path / "real" / "ground_truth.json"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0 and (tmp_path / "out" / "canonical" / "ground_truth.json").exists()
    assert (tmp_path / "out" / "synth.log").exists()
    rc = _cli(["--config", str(CONFIG), "--structure", str(tmp_path / "missing.json"), "--output", str(tmp_path / "x")])
    assert rc == 2 and "missing.json" in capsys.readouterr().err
    bad = dict(structure, classes=CLASSES + ["Juggling"])
    write_ground_truth(tmp_path / "bad", bad)
    rc = _cli(
        [
            "--config",
            str(CONFIG),
            "--structure",
            str(tmp_path / "bad" / "ground_truth.json"),
            "--output",
            str(tmp_path / "y"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Juggling" in err and "synthetic.yaml" in err
    (tmp_path / "broken.yaml").write_text("seed: 0\n")
    rc = _cli(
        [
            "--config",
            str(tmp_path / "broken.yaml"),
            "--structure",
            str(tmp_path / "real" / "ground_truth.json"),
            "--output",
            str(tmp_path / "z"),
        ]
    )
    assert rc == 2 and "broken.yaml" in capsys.readouterr().err
