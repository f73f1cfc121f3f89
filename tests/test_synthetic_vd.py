"""`thumos14-vd`: per-video facts, drawn from the script, in the features and (noisily) in the text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_synthetic import CLASSES, make_structure
from wtal_data.canonical import DatasetError, FeatureStore, load_ground_truth
from wtal_data.synthetic import describe, generate_dataset, load_config
from wtal_data.synthetic.generate import FeatureModel
from wtal_data.synthetic.scripts import StateTable, SynthConfigError, Timeline, class_scripts, event_at

ROOT = Path(__file__).resolve().parents[1]
VD_CONFIG = ROOT / "config" / "synthetic_vd.yaml"


@pytest.fixture(scope="module")
def vd_cfg():
    return load_config(VD_CONFIG)


@pytest.fixture(scope="module")
def structure():
    return make_structure(n_per_class=5)


@pytest.fixture(scope="module")
def vd(tmp_path_factory, vd_cfg, structure):
    out = tmp_path_factory.mktemp("vd")
    generate_dataset(structure, vd_cfg, out, size="full", seed=0, videos=False, progress=False)
    return out / "canonical", json.loads((out / "canonical" / "scripts.json").read_text())


def test_config_extends_the_frozen_one_and_names_its_own_set(vd_cfg, tmp_path):
    base = load_config(ROOT / "config" / "synthetic.yaml")
    assert vd_cfg["classes"] == base["classes"] and vd_cfg["background_words"] == base["background_words"]
    assert vd_cfg["features"]["dim_per_modality"] == 128 and vd_cfg["features"]["word_noise_std"] == 0.25
    assert vd_cfg["describer"]["omit_prob"] == base["describer"]["omit_prob"]
    assert vd_cfg["dataset_names"] == {"full": "thumos14-vd"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {VD_CONFIG}\nvideo_facts: {{performer: {{words: [man]}}}}\n")
    with pytest.raises(SynthConfigError, match="video_facts.performer"):
        load_config(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(SynthConfigError, match="loops"):
        load_config(loop)


def test_named_synthetic_and_no_demo_size(vd, vd_cfg, structure, tmp_path):
    canonical, scripts = vd
    gt = load_ground_truth(canonical)
    assert gt["dataset"] == scripts["dataset"] == "thumos14-vd" and gt["synthetic"] is True
    assert gt["family"] == "thumos14" and "synthetic_vd.yaml" in gt["source"]
    assert FeatureStore.open(canonical).feature_dim == 256
    with pytest.raises(DatasetError, match="dataset_names"):
        generate_dataset(structure, vd_cfg, tmp_path / "d", size="demo", videos=False, progress=False)


def test_facts_drawn_per_video_and_shown_in_the_script(vd, vd_cfg):
    _, scripts = vd
    spec = vd_cfg["video_facts"]
    performers = set()
    for rec in scripts["videos"].values():
        assert set(rec["facts"]) == {i["label"] for i in rec["instances"]}
        for label, fact in rec["facts"].items():
            performers.add(fact["performer"])
            assert fact["colour"] in spec["colour"]["words"] and fact["speed"] in spec["speed"]["words"]
            assert fact["count"] == sum(i["label"] == label for i in rec["instances"])
            for inst in (i for i in rec["instances"] if i["label"] == label):
                opt = [w for w in inst["phases"] if w in spec["optional_phases"]["words"]]
                assert opt == fact["optional"]  # every instance, in the drawn order
                key = next(p["word"] for p in scripts["classes"][label]["phases"] if p["key"])
                if opt:  # before the key phase
                    assert inst["phases"].index(opt[-1]) + 1 == inst["phases"].index(key)
    assert len(performers) > 1


def test_same_seed_same_bytes(vd, vd_cfg, structure, tmp_path):
    canonical, _ = vd
    generate_dataset(structure, vd_cfg, tmp_path / "a", size="full", seed=0, videos=False, progress=False)
    for name in ("features.npy", "scripts.json"):
        assert (tmp_path / "a" / "canonical" / name).read_bytes() == (canonical / name).read_bytes()


def test_features_carry_each_fact_during_its_instances(vd_cfg):
    """Hand-checked rendering: the fact signal is the facts' directions, weighted by the share of
    the class's phases in each snippet (0 outside), plus the manner's extra flow gain."""
    scripts = class_scripts(vd_cfg, CLASSES)
    table = StateTable.build(scripts, vd_cfg["background_words"])
    model = FeatureModel.build(vd_cfg, table, CLASSES, 0)
    fps = model.frames_per_snippet
    state = np.full(4 * fps, table.index[("background", None, "crowd")], np.int32)
    run = table.index[("phase", "HighJump", "run")]
    state[fps : 2 * fps + fps // 2] = run  # snippet 1 all phase, snippet 2 half
    tl = Timeline(state, np.ones_like(state, np.float32), np.full_like(state, -1))
    fact = {"performer": "woman", "colour": "red", "speed": "fast", "optional": [], "count": 1}
    W = model.snippet_weights(tl)
    got = model.fact_signal(W, {"HighJump": fact})
    share = W[:, run]
    dirs = model.fact_directions
    look = dirs["performer"]["woman"] + dirs["colour"]["red"] + dirs["speed"]["fast"]
    dim = model.dim // 2
    want = share[:, None] * look
    want[:, dim:] += 0.25 * share[:, None] * model.state_means[run, dim:]  # flow gain 1.25
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert share[0] < share[2] < share[1] and share[3] < share[2]
    # RGB carries the look only, flow the manner only (config weights)
    assert np.abs(dirs["colour"]["red"][dim:]).max() == 0 and np.abs(dirs["speed"]["fast"][:dim]).max() == 0
    # directions are centred within a group: with two words, one is the other's negative
    np.testing.assert_allclose(dirs["speed"]["fast"], -dirs["speed"]["slow"], atol=1e-5)


def test_facts_are_readable_from_the_generated_features(vd):
    """Instance snippets of red performers project more on the red direction than others' do."""
    canonical, scripts = vd
    cfg = load_config(VD_CONFIG)
    table = StateTable.build(class_scripts(cfg, CLASSES), cfg["background_words"])
    dirs = FeatureModel.build(cfg, table, CLASSES, 0).fact_directions
    store = FeatureStore.open(canonical)
    for group, dim_slice in (("performer", slice(0, 128)), ("speed", slice(128, 256))):
        hits = total = 0
        words = list(dirs[group])
        D = np.stack([dirs[group][w][dim_slice] for w in words])
        for vid, rec in scripts["videos"].items():
            x = np.asarray(store[vid])
            for label, fact in rec["facts"].items():
                rows = [
                    t
                    for t in range(rec["num_snippets"])
                    if (e := event_at(rec["events"], (t + 0.5) * 0.64))["kind"] == "phase" and e["label"] == label
                ]
                if rows:
                    m = x[rows, dim_slice].mean(0)
                    hits += words[int(np.argmax(D @ m))] == fact[group]
                    total += 1
        assert hits / total > 1.5 / len(words), group  # far above chance, not necessarily clean


def test_descriptions_state_facts_at_the_configured_rates(vd, vd_cfg):
    _, scripts = vd
    syn = vd_cfg["describer"]["synonyms"]
    performer_words = {w: set(syn[w]) for w in vd_cfg["video_facts"]["performer"]["words"]}
    said = right = n = 0
    texts = set()
    for vid, rec in scripts["videos"].items():
        for label, fact in rec["facts"].items():
            for seed in range(4):
                text = describe(scripts, vid, label, "complete", seed)
                assert text == describe(scripts, vid, label, "complete", seed)  # deterministic
                texts.add(text)
                words = set(text.replace(".", " ").replace(",", " ").split())
                mentioned = [p for p, forms in performer_words.items() if forms & words]
                n += 1
                said += bool(mentioned)
                right += mentioned == [fact["performer"]]
    p_omit, p_wrong = vd_cfg["describer"]["fact_omit_prob"], vd_cfg["describer"]["fact_wrong_prob"]
    assert said / n == pytest.approx(1 - p_omit, abs=0.08)
    assert right / n == pytest.approx(1 - p_omit - p_wrong, abs=0.08)
    assert len({len(t.split()) for t in texts}) > 10  # varying length
    # clean text says every fact, with a paraphrase of the true word; optional phases in order
    vid, rec = next((v, r) for v, r in scripts["videos"].items() if any(f["optional"] for f in r["facts"].values()))
    label, fact = next((lab, f) for lab, f in rec["facts"].items() if f["optional"])
    clean = describe(scripts, vid, label, "complete", 0, noise=0.0)
    words = clean.replace(".", " ").replace(",", " ").split()
    assert set(syn[fact["performer"]]) & set(words) and set(syn[fact["colour"]]) & set(words)
    speed_forms = set(syn[fact["speed"]]) | set(vd_cfg["describer"]["adverbs"][fact["speed"]])
    assert speed_forms & set(words)
    assert [w for w in words if w in fact["optional"]] == fact["optional"]


def test_key_sentences_vary_in_wording(vd):
    _, scripts = vd
    vid = next(iter(scripts["videos"]))
    label = scripts["videos"][vid]["labels"][0]
    keys = {describe(scripts, vid, label, "key", seed) for seed in range(20)}
    assert len(keys) >= 5 and all(k.count(".") == 1 for k in keys)


def test_fact_words_are_known_to_glove(vd_cfg):
    from wtal_data.synthetic.describer_vd import COUNT_MANY, COUNT_ONCE, NUMBER_WORDS
    from wtal_data.word_vectors import load_word_vectors

    d = vd_cfg["describer"]
    words = {w for forms in d["synonyms"].values() for w in forms} | {w for f in d["adverbs"].values() for w in f}
    words |= set(vd_cfg["video_facts"]["optional_phases"]["words"]) | set(NUMBER_WORDS)
    words |= {w.strip(".").lower() for s in COUNT_ONCE + COUNT_MANY for w in s.split()}
    vectors = load_word_vectors("glove-6b-50d", restrict_to=words)
    assert sorted(w for w in words if w not in vectors) == []


# Reference for tests.test_synthetic.make_structure() (seed 0), taken with the generator
# before thumos14-vd existed (features.npy sha256 then: demo 19b692e5..., full 6a70f315...,
# reproduced with OPENBLAS_CORETYPE=Haswell): adding the second benchmark changed neither set.
# Compared through a float64 fingerprint, not bytes: OpenBLAS picks its float32 kernels per
# CPU, so the same code gives features that differ by up to ~2.4e-6 on an AVX-512 machine
# (fingerprint rows by <= 5e-5), while changing one value by 1e-3 moves them by ~2.4e-3.
FINGERPRINT_FILE = ROOT / "tests" / "data" / "synthetic_features_fingerprint.npz"


def features_fingerprint(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per snippet: 4 fixed random projections and the mean; per dimension: the mean."""
    values = np.asarray(features, dtype=np.float64)
    directions = np.random.default_rng(20261207).standard_normal((values.shape[1], 4))
    rows = np.concatenate([values @ directions, values.mean(axis=1, keepdims=True)], axis=1)
    return rows, values.mean(axis=0)


@pytest.mark.parametrize("size", ["demo", "full"])
def test_thumos14_synth_and_demo_unchanged(tmp_path, size):
    cfg = load_config(ROOT / "config" / "synthetic.yaml")
    generate_dataset(make_structure(), cfg, tmp_path, size=size, seed=0, videos=False, progress=False)
    rows, columns = features_fingerprint(np.load(tmp_path / "canonical" / "features.npy"))
    reference = np.load(FINGERPRINT_FILE)
    np.testing.assert_allclose(rows, reference[f"{size}_rows"], rtol=0, atol=5e-4)
    np.testing.assert_allclose(columns, reference[f"{size}_columns"], rtol=0, atol=5e-7)
    assert "video_facts" not in json.loads((tmp_path / "canonical" / "scripts.json").read_text())


def test_text_probe_key_descriptions_retrieve_the_class_better_than_names(vd):
    """On the vd fixture (4 classes), the class-level key text retrieves the class of a held-out
    video's instances far above chance; every figure is an accuracy over the counted test pairs."""
    from wtal_data.synthetic.sanity import text_probe

    canonical, scripts = vd
    gt = load_ground_truth(canonical)
    out = text_probe(FeatureStore.open(canonical), gt, scripts)
    pairs = sum(
        any(a["label"] == c for a in rec["annotations"])
        for rec in gt["database"].values()
        if rec["subset"] == "test"
        for c in rec["labels"]
    )
    assert out["text_pairs"] == pairs > 0 and out["text_chance"] == 1 / len(gt["classes"])
    for kind in ("key", "name"):
        for suffix in ("", "_uncentred"):
            value = out[f"text_{kind}_acc{suffix}"]
            assert 0.0 <= value <= 1.0 and (value * pairs) == pytest.approx(round(value * pairs))
    assert out["text_key_acc"] > 3 * out["text_chance"]
    assert out["text_key_acc"] > out["text_name_acc"]


def test_text_probe_on_a_hand_made_store():
    """Three classes, each named after the word another class shows; features are the shown word's
    one-hot vector plus a little noise.  The key texts say what is shown, so they retrieve every
    pair; the names point one class off, so they retrieve none.  A class with no known word
    ("Qqq", no key text) is never retrieved; unknown words ("xq", "athlete") are skipped."""
    from wtal_data.synthetic.sanity import text_probe
    from wtal_data.word_vectors import WordVectors

    words = ["kick", "spin", "jump", "crowd"]
    vectors = WordVectors(words, np.eye(4, dtype=np.float32), "hand-made")
    shows = {"KickXq": "spin", "Spin": "jump", "Jump": "kick"}
    classes = [*shows, "Qqq"]
    rng = np.random.default_rng(0)
    store, db, videos = {}, {}, {}
    for subset in ("train", "test"):
        for c, word in shows.items():
            for k in range(3):
                vid = f"{subset}_{c}_{k}"
                shown = ["crowd"] * 3 + [word] * 4 + ["crowd"] * 3
                store[vid] = np.eye(4)[[words.index(w) for w in shown]] + 0.05 * rng.standard_normal((10, 4))
                events = [
                    {"start": 0.0, "end": 3.0, "kind": "background", "label": None, "word": "crowd"},
                    {"start": 3.0, "end": 7.0, "kind": "phase", "label": c, "word": word},
                    {"start": 7.0, "end": 10.0, "kind": "background", "label": None, "word": "crowd"},
                ]
                videos[vid] = {"num_snippets": 10, "events": events}
                db[vid] = {"subset": subset, "labels": [c], "annotations": [{"label": c, "segment": [3.0, 7.0]}]}
    gt = {"classes": classes, "snippet_seconds": 1.0, "database": db}
    key_texts = {"KickXq": ["The athlete does a spin."], "Spin": ["We see a jump."], "Jump": ["A kick, then a kick."]}
    out = text_probe(store, gt, {"videos": videos}, vectors=vectors, lam=1e-3, key_texts=key_texts)
    assert out == {
        "text_key_acc": 1.0,
        "text_key_acc_uncentred": 1.0,
        "text_name_acc": 0.0,
        "text_name_acc_uncentred": 0.0,
        "text_chance": 0.25,
        "text_pairs": 9.0,
    }
    # the names told the truth: they retrieve every pair too
    truthful = {"Spin": "spin", "Jump": "jump", "KickXq": "kick"}
    store2 = {v: x for v, x in store.items()}
    for vid, rec in videos.items():
        c = db[vid]["labels"][0]
        rows = np.eye(4)[[words.index(w) for w in ["crowd"] * 3 + [truthful[c]] * 4 + ["crowd"] * 3]]
        store2[vid] = rows + 0.05 * rng.standard_normal((10, 4))
        rec["events"][1]["word"] = truthful[c]
    out = text_probe(store2, gt, {"videos": videos}, vectors=vectors, lam=1e-3, key_texts=key_texts)
    assert out["text_name_acc"] == 1.0 and out["text_key_acc"] == 0.0


def test_text_probe_splits_class_names_as_the_prompts_do(vd_cfg):
    from prior_generation.prompts import readable_class_name
    from wtal_data.synthetic.sanity import STOP_WORDS, class_name_words, content_words

    for name in [*vd_cfg["classes"], "TVShow", "Playing bagpipes", "Run-Up2"]:
        assert class_name_words(name) == [w for w in readable_class_name(name).split() if w not in STOP_WORDS]
    assert class_name_words("CleanAndJerk") == ["clean", "jerk"]
    assert content_words("The athlete does a spin, then a kick.") == ["athlete", "spin", "kick"]
