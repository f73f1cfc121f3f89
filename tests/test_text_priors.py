"""Text priors on real English sentences: spaCy POS, GloVe lookup, masking, robustness, loader, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prior_generation.text_priors import (
    TextPriorsConfig,
    TextPriorsError,
    build_text_priors,
    compute_report,
    format_report,
    load_text_priors,
)
from prior_generation.text_priors.__main__ import main as cli_main
from prior_generation.text_priors.masking import mask_row, num_to_mask
from prior_generation.text_priors.tokenizer import humanize_class_name

LONG = " ".join(["The athlete runs quickly and then jumps over the bar while the crowd cheers loudly."] * 8)

ROWS = [
    # (video_id, class_name, kind, text, error, flags)
    (
        "v1",
        "JavelinThrow",
        "key",
        "A man runs down the runway and throws the javelin far across the field.",
        None,
        None,
    ),
    (
        "v1",
        "JavelinThrow",
        "complete",
        "A tall athlete sprints down the track, pulls his arm back, and throws the javelin high into the air "
        "before it lands in the grass.",
        None,
        None,
    ),
    ("v2", "JavelinThrow", "key", "An athlete hurls a long spear after a short run-up.", None, None),
    (
        "v2",
        "JavelinThrow",
        "complete",
        "The woman grips the javelin, accelerates along the runway and releases it with a powerful throw.",
        None,
        None,
    ),
    ("v3", "CliffDiving", "key", "A diver jumps off a high cliff and plunges into the sea.", None, None),
    (
        "v3",
        "CliffDiving",
        "complete",
        "A young man climbs to the edge of the rocky cliff, spreads his arms, leaps forward and dives "
        "head first into the deep blue water below.",
        None,
        None,
    ),
    (
        "v3",
        "BasketballDunk",
        "complete",
        "A player dribbles toward the hoop, jumps and slams the ball through the basket.",
        None,
        None,
    ),
    # a description that never names the action
    ("v4", "BasketballDunk", "key", "People are standing in a gym and talking to each other.", None, None),
    # robustness
    ("v4", "BasketballDunk", "complete", LONG, None, "truncated"),
    ("v5", "CliffDiving", "key", "", None, "empty"),
    ("v5", "CliffDiving", "complete", None, "CUDA out of memory", None),
    ("v6", "CliffDiving", "key", "xqzvbl blorfq zzkkqw wplmxx qqqzzt", None, None),
    ("v6", "CliffDiving", "complete", "!!! ... ???", None, None),
    ("v8", "CliffDiving", "key", "一个男人从悬崖上跳入大海。", None, None),
    (
        "v1",
        "JavelinThrow",
        "key",
        "A man runs down the runway and throws the javelin far across the field.",
        None,
        None,
    ),
    ("v7", "JavelinThrow", "key", "The athlete performs a glorbtastic throw of the javelin.", None, None),
]
COLUMNS = ("video_id", "class_name", "kind", "text", "error", "flags")


def write_descriptions(path: Path, rows=ROWS) -> Path:
    cols = {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}
    n = len(rows)
    cols.update(
        prompt=[f"This video contains the actions of {r[1]}." for r in rows],
        prompt_hash=["abc123"] * n,
        backend=["tiny"] * n,
        model=["tiny-random-mllm"] * n,
        model_revision=["0"] * n,
        generation_params=['{"max_new_tokens": 128}'] * n,
        num_frames=pa.array([8] * n, pa.int32()),
        frame_indices=pa.array([[0, 4, 8, 12, 16, 20, 24, 28]] * n, pa.list_(pa.int32())),
        fps=[25.0] * n,
        seconds=[0.1] * n,
        created_at=["2024-01-01T00:00:00Z"] * n,
    )
    table = pa.table(
        {
            k: v if isinstance(v, pa.Array) else pa.array(v, pa.string() if k in COLUMNS else None)
            for k, v in cols.items()
        }
    )
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tp")
    src = write_descriptions(root / "descriptions.parquet")
    meta = build_text_priors(src, root / "out", TextPriorsConfig(max_tokens=40, seed=3))
    return root, src, meta, load_text_priors(root / "out")


def test_counts_and_robustness(built):
    _, _, meta, tp = built
    c = meta["counts"]
    assert c["input_rows"] == len(ROWS)
    assert c["excluded_error"] == 1  # OOM row
    assert c["excluded_empty"] == 1  # "" with flag empty
    assert c["duplicates_removed"] == 1
    assert c["excluded_no_words"] == 1  # "!!! ... ???"
    assert c["excluded_garbage"] == 2  # random letters, Chinese
    assert c["truncated"] == 1 and c["usable"] == 10
    assert c["never_names_class"] >= 1
    assert tp.key_tokens("v6", "CliffDiving") == [] and tp.complete("v5", "CliffDiving") == []
    long_item = tp.complete("v4", "BasketballDunk")[0]
    assert len(long_item.target_ids) == 40
    assert set(tp.classes) == {"BasketballDunk", "CliffDiving", "JavelinThrow"}


def test_verbs_found_and_action_flags(built):
    root, _, _, tp = built
    t = pq.read_table(root / "out" / "tokens.parquet").to_pylist()
    row = next(r for r in t if r["video_id"] == "v1" and r["kind"] == "key")
    assert row["words"][:3] == ["a", "man", "runs"]
    assert "." not in row["words"]  # punctuation dropped
    flags = dict(zip(row["words"], zip(row["pos"], row["is_action"])))
    assert flags["runs"] == ("VERB", True) and flags["throws"] == ("VERB", True)
    assert flags["javelin"][1] is True  # a word of the class name
    assert flags["field"][1] is False
    never = next(r for r in t if r["video_id"] == "v4" and r["kind"] == "key")
    assert never["names_class"] is False


def test_one_third_masked_targets_kept(built):
    _, _, _, tp = built
    items = [it for v in tp.videos() for c in tp.classes for it in tp.complete(v, c)]
    assert len(items) == 5
    for it in items:
        m = len(it.target_ids)
        assert len(it.mask_positions) == max(1, int(np.floor(m / 3 + 0.5)))
        assert np.all(it.input_ids[it.mask_positions] == tp.mask_id)
        keep = np.setdiff1d(np.arange(m), it.mask_positions)
        assert np.array_equal(it.input_ids[keep], it.target_ids[keep])
        assert not np.any(it.target_ids == tp.mask_id)
    # verbs are favoured: more than their share of the words
    rep = compute_report(tp.directory)["by_kind"]["complete"]["masked"]
    assert rep["verb_share"] > rep["verb_share_of_all_words"]


def test_oov_rule_and_vectors(built):
    _, _, meta, tp = built
    assert tp.vocab[:4] == ["<pad>", "<unk>", "<start>", "<mask>"]
    assert (tp.pad_id, tp.unk_id, tp.start_id, tp.mask_id) == (0, 1, 2, 3)
    assert tp.word_vectors.dtype == np.float32 and tp.word_vectors.shape == (len(tp.vocab), 50)
    assert np.all(tp.word_vectors[0] == 0)
    words = [tp.vocab[i] for i in range(4, len(tp.vocab)) if tp.vocab_info["vector_from"][i] != "unk"]
    assert np.allclose(tp.word_vectors[1], tp.word_vectors[[tp.word_index[w] for w in words]].mean(0), atol=1e-5)
    assert "glorbtastic" not in tp.word_index  # no vector -> <unk>
    ids = tp.key_tokens("v7", "JavelinThrow")[0]
    assert tp.decode(ids) == ["the", "athlete", "performs", "a", "<unk>", "throw", "of", "the", "javelin"]
    from wtal_data.word_vectors import load_word_vectors

    glove = load_word_vectors(restrict_to={"throws", "javelin"})
    assert np.allclose(tp.word_vectors[tp.word_index["throws"]], glove.get("throws"))
    assert meta["counts"]["no_vector_tokens"] >= 1
    assert not np.allclose(tp.word_vectors[2], tp.word_vectors[3])


def test_class_name_template_and_bank(built):
    _, _, _, tp = built
    assert humanize_class_name("CleanAndJerk") == "clean and jerk"
    assert tp.decode(tp.class_name_tokens("JavelinThrow")) == ["javelin", "throw"]
    t = tp.template_complete("CliffDiving")
    assert tp.decode(t.target_ids) == ["a", "video", "of", "the", "cliff", "diving"]
    assert len(t.mask_positions) == 2 and np.all(t.input_ids[t.mask_positions] == tp.mask_id)
    bank = tp.key_bank("JavelinThrow")
    assert len(bank) == 3 and all(b.dtype == np.int64 for b in bank)
    assert tp.key_bank("BasketballDunk")[0].tolist() == tp.key_tokens("v4", "BasketballDunk")[0].tolist()
    with pytest.raises(KeyError):
        tp.class_name_tokens("Nope")


def test_deterministic_and_order_independent(built, tmp_path):
    root, _, _, _ = built
    shuffled = [ROWS[i] for i in np.random.default_rng(0).permutation(len(ROWS))]
    src = write_descriptions(tmp_path / "shuffled.parquet", shuffled)
    build_text_priors(src, tmp_path / "a", TextPriorsConfig(max_tokens=40, seed=3))
    a = pq.read_table(tmp_path / "a" / "tokens.parquet")
    assert a.equals(pq.read_table(root / "out" / "tokens.parquet"))
    assert np.array_equal(np.load(tmp_path / "a" / "word_vectors.npy"), np.load(root / "out" / "word_vectors.npy"))
    build_text_priors(src, tmp_path / "b", TextPriorsConfig(max_tokens=40, seed=4))
    b = pq.read_table(tmp_path / "b" / "tokens.parquet")
    assert a.column("token_ids").equals(b.column("token_ids"))
    assert not a.column("mask_positions").equals(b.column("mask_positions"))


def test_text_word_vectors_and_vocab_cap(built, tmp_path):
    _, src, _, _ = built
    # a GloVe-format text file (d = 7) with a few words: dimension flows from the file
    words = [
        "a",
        "man",
        "run",
        "the",
        "javelin",
        "throw",
        "athlete",
        "cliff",
        "dive",
        "diver",
        "jump",
        "into",
        "sea",
        "high",
        "off",
        "and",
        "down",
        "far",
        "across",
        "field",
        "runway",
        "an",
        "after",
        "long",
        "spear",
    ]
    rng = np.random.default_rng(0)
    lines = [w + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=7)) for w in words]
    vec = tmp_path / "vectors.txt"
    vec.write_text("\n".join(lines) + "\n")
    cfg = TextPriorsConfig(word_vectors=str(vec), max_vocab=20, min_known_ratio=0.0)
    build_text_priors(src, tmp_path / "out", cfg)
    tp = load_text_priors(tmp_path / "out")
    assert tp.word_vectors.shape[1] == 7
    forced = {"javelin", "throw", "cliff", "diving", "basketball", "dunk", "a", "video", "of", "the"}
    assert forced <= set(tp.vocab)
    assert len(tp.vocab) == max(20, 4 + len(forced))
    # "runs" is not in the file but its lemma "run" is
    assert tp.vocab_info["vector_from"][tp.word_index["diving"]] in ("lemma", "unk")


def test_bad_inputs(tmp_path):
    with pytest.raises(TextPriorsError, match="not found"):
        build_text_priors(tmp_path / "missing.parquet", tmp_path / "out")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(TextPriorsError, match="bad.parquet"):
        build_text_priors(bad, tmp_path / "out")
    pq.write_table(pa.table({"video_id": ["v"], "text": ["x"]}), tmp_path / "cols.parquet")
    with pytest.raises(TextPriorsError, match="missing column"):
        build_text_priors(tmp_path / "cols.parquet", tmp_path / "out")
    write_descriptions(tmp_path / "kind.parquet", [("v", "C", "summary", "A man runs.", None, None)])
    with pytest.raises(TextPriorsError, match="kind"):
        build_text_priors(tmp_path / "kind.parquet", tmp_path / "out")
    write_descriptions(tmp_path / "allbad.parquet", [("v", "C", "key", "x", "boom", None)])
    with pytest.raises(TextPriorsError, match="no usable"):
        build_text_priors(tmp_path / "allbad.parquet", tmp_path / "out")
    with pytest.raises(TextPriorsError, match="spaCy pipeline 'no_such_model'"):
        build_text_priors(
            write_descriptions(tmp_path / "ok.parquet"), tmp_path / "out", TextPriorsConfig(spacy_model="no_such_model")
        )
    with pytest.raises(TextPriorsError, match="meta.json"):
        load_text_priors(tmp_path / "out")
    assert not (tmp_path / "out" / "meta.json").exists()


def test_masking_unit():
    assert [num_to_mask(n, 1 / 3) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 1, 1, 1, 2, 2, 2]
    rng = np.random.default_rng(0)
    # <unk> (id 1) positions are masked only when nothing else is left
    m = mask_row([5, 1, 1, 6, 1, 1], np.ones(6), 1 / 3, rng)
    assert m.positions == [0, 3] and m.input_ids == [3, 1, 1, 3, 1, 1]


def test_cli_build_report_and_errors(built, tmp_path, capsys):
    _, src, _, _ = built
    log = tmp_path / "logs" / "tp.log"
    rc = cli_main(
        [
            "build",
            "--descriptions",
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            "--max-vocab",
            "100",
            "--seed",
            "1",
            "--log",
            str(log),
            "--no-progress",
        ]
    )
    assert rc == 0 and log.read_text()
    assert json.loads(capsys.readouterr().out)["counts"]["usable"] == 10
    assert cli_main(["report", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "OOV rate" in text and "masked positions" in text and "action words/sentence" in text
    assert format_report(compute_report(tmp_path / "out")).splitlines()[0].startswith("text priors")
    assert (
        cli_main(["build", "--descriptions", str(tmp_path / "nope.parquet"), "--output-dir", str(tmp_path / "x")]) == 2
    )
    assert "nope.parquet" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "x")]) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "prior_generation.text_priors", "report", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "meta.json" in proc.stderr


def test_ground_truth_class_order_and_loader_check(built, tmp_path):
    root, src, _, tp = built
    gt = tmp_path / "ground_truth.json"
    order = ["JavelinThrow", "PoleVault", "CliffDiving", "BasketballDunk"]
    gt.write_text(json.dumps({"classes": order}))
    meta = build_text_priors(src, tmp_path / "out", TextPriorsConfig(max_tokens=40, seed=3), ground_truth=gt)
    tp2 = load_text_priors(tmp_path / "out")
    assert tp2.classes == order and meta["counts"]["classes_without_key"] == 1
    assert tp2.key_bank("PoleVault") == [] and tp2.decode(tp2.class_name_tokens("PoleVault")) == ["pole", "vault"]
    gt.write_text(json.dumps({"classes": ["JavelinThrow"]}))
    with pytest.raises(TextPriorsError, match="not in"):
        build_text_priors(src, tmp_path / "bad", ground_truth=gt)
    # the loader puts classes in the data set's order, or says why it cannot
    wanted = ["JavelinThrow", "BasketballDunk", "CliffDiving"]
    assert load_text_priors(root / "out", classes=wanted).classes == wanted
    with pytest.raises(TextPriorsError, match="PoleVault"):
        load_text_priors(root / "out", classes=wanted + ["PoleVault"])


def test_training_loads_priors_in_the_data_sets_class_order(built):
    """Priors built without --ground-truth are sorted; training must see the data set's order,
    and a different class set is a named input error (exit 2)."""
    from prior_generation.text_priors import ClassOrderError
    from wtal_common.errors import EXIT_BAD_INPUT, InputError
    from wtal_training.data import load_text_priors as training_loader

    root, _, _, tp = built
    assert tp.classes == sorted(tp.classes)
    dataset_order = ["JavelinThrow", "BasketballDunk", "CliffDiving"]
    loaded = training_loader(root / "out", dataset_order)
    assert loaded.classes == dataset_order
    with pytest.raises(ClassOrderError, match="PoleVault") as info:
        training_loader(root / "out", dataset_order + ["PoleVault"])
    assert isinstance(info.value, InputError) and info.value.exit_code == EXIT_BAD_INPUT


def test_cli_config_file(built, tmp_path, capsys):
    _, src, _, _ = built
    cfg = tmp_path / "tp.yaml"
    cfg.write_text("pos_weights: {VERB: 50.0, OTHER: 0.01}\naction_weight: 50.0\nmax_tokens: 40\n")
    assert (
        cli_main(
            [
                "build",
                "--descriptions",
                str(src),
                "--output-dir",
                str(tmp_path / "o"),
                "--config",
                str(cfg),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    rep = compute_report(tmp_path / "o")["by_kind"]["complete"]
    assert rep["words"]["max"] > 40 and rep["truncated"] == 1
    # heavy action weights: every action word is masked, or every mask is on an action word
    for r in pq.read_table(tmp_path / "o" / "tokens.parquet").to_pylist():
        if r["kind"] == "complete":
            masked = {r["is_action"][p] for p in r["mask_positions"]}
            n_action = sum(r["is_action"])
            assert (
                masked == {True}
                if n_action >= len(r["mask_positions"])
                else all(r["is_action"][p] <= (p in r["mask_positions"]) for p in range(len(r["words"])))
            )
    cfg.write_text("no_such_field: 1\n")
    assert (
        cli_main(["build", "--descriptions", str(src), "--output-dir", str(tmp_path / "o2"), "--config", str(cfg)]) == 2
    )
    assert "no_such_field" in capsys.readouterr().err
