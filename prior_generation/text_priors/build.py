"""Build the text-priors folder from a descriptions Parquet.

Folder layout (all written atomically; ``meta.json`` is written last and marks the folder
complete: a folder without it is unfinished and the loader refuses it)::

    tokens.parquet     one row per usable description, sorted by (video_id, class_name, kind, text):
                       video_id, class_name, kind, text, words list<str>, token_ids list<int32>,
                       pos list<str>, is_action list<bool>, num_words (before the cap),
                       truncated (cut at max_tokens), names_class (mentions a class-name word),
                       known_ratio (share of words with a word vector), generation_flags, model,
                       and for kind == "complete" (null for "key"): masked_input_ids list<int32>,
                       target_ids list<int32> (the original ids), mask_positions list<int32>
    vocab.json         {"tokens": [...id order...], "specials": {...}, "frequency": [...],
                        "vector_from": [...], "config": {...}}
    word_vectors.npy   float32 (V, d); d from the word-vector source
    key_bank.json      {"classes": {cls: [{"video_id", "token_ids"}, ...]}}: key descriptions per class
    classes.json       {"classes": [...], "per_class": {cls: {"name", "name_ids", "template",
                        "template_ids", "template_masked_input_ids", "template_mask_positions"}}}
    meta.json          source file hash, spaCy pipeline, word vectors, seed, config, counts

Token ids carry no <start>: KSM prepends its own learnable start/context tokens.
An action word (``is_action``) is a VERB, or a non-stop word whose text or lemma is a
word of the row's class name ("throws" in a JavelinThrow description).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wtal_data.word_vectors import load_word_vectors

from .config import MASK_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, TextPriorsConfig, TextPriorsError
from .descriptions import read_descriptions
from .masking import mask_row, mask_weights, row_rng
from .tokenizer import Tokenized, humanize_class_name, load_spacy, spacy_info, tokenize
from .vocab import LemmaTable, build_matrix, build_vocab

log = logging.getLogger("prior_generation.text_priors")

SCHEMA_VERSION = 1
FILES = ("tokens.parquet", "vocab.json", "word_vectors.npy", "key_bank.json", "classes.json", "meta.json")


def _atomic_bytes(path: Path, data: bytes) -> None:
    from wtal_common.io import atomic_write_bytes

    atomic_write_bytes(path, data)


def _atomic_json(path: Path, obj: Any) -> None:
    _atomic_bytes(path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"))


def _class_words(tok: Tokenized) -> set[str]:
    """Content words of a class name (text and lemma), used to flag action words."""
    out: set[str] = set()
    for w, lemma, stop in zip(tok.words, tok.lemmas, tok.stop):
        if not stop:
            out.update((w, lemma))
    return out


def _read_classes(ground_truth: str | os.PathLike | None) -> list[str] | None:
    if ground_truth is None:
        return None
    path = Path(ground_truth)
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))["classes"]
    except FileNotFoundError as exc:
        raise TextPriorsError(f"{path}: ground-truth file not found") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise TextPriorsError(f"{path}: not a canonical ground_truth.json with a 'classes' list") from exc
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise TextPriorsError(f"{path}: 'classes' must be a list of strings")
    return classes


def build_text_priors(
    descriptions: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: TextPriorsConfig | None = None,
    ground_truth: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Build the folder; return the meta dict (also written as meta.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = config or TextPriorsConfig()
    config.validate()
    t0 = time.perf_counter()
    out = Path(output_dir)
    rows, counts, source = read_descriptions(descriptions)
    if not rows:
        raise TextPriorsError(f"{descriptions}: no usable descriptions (counts: {counts})")

    gt_classes = _read_classes(ground_truth)
    row_classes = sorted({r.class_name for r in rows})
    if gt_classes is not None:
        unknown = [c for c in row_classes if c not in gt_classes]
        if unknown:
            raise TextPriorsError(f"{descriptions}: classes {unknown} are not in {ground_truth}")
        classes = list(gt_classes)
    else:
        classes = row_classes
        log.warning(
            "no --ground-truth: classes are those of the descriptions, sorted (%d); pass the data set's "
            "ground_truth.json to fix their order and include classes without descriptions",
            len(classes),
        )
    log.info("%d usable descriptions of %d classes from %s (%s)", len(rows), len(classes), descriptions, counts)

    # --- spaCy: descriptions, class names, templates -----------------------------------
    nlp = load_spacy(config.spacy_model)
    names = {c: humanize_class_name(c) for c in classes}
    templates = {c: config.template.format(cls=names[c]) for c in classes}
    toks = tokenize(
        nlp,
        [r.text for r in rows],
        config.batch_size,
        progress=progress,
        max_words=config.max_tokens,
        n_process=config.n_process,
    )
    name_toks = dict(zip(classes, tokenize(nlp, [names[c] for c in classes], config.batch_size)))
    tmpl_toks = dict(zip(classes, tokenize(nlp, [templates[c] for c in classes], config.batch_size)))

    # --- word vectors: load only the words (and lemmas) we can meet ---------------------
    table = LemmaTable()
    for tok in toks:
        table.add(tok.words, tok.lemmas, count=False)
    for tok in list(name_toks.values()) + list(tmpl_toks.values()):
        table.add(tok.words, tok.lemmas, count=False)
    wv = load_word_vectors(config.word_vectors, restrict_to=table.candidates())
    log.info("word vectors %s: %d of the needed words found, d=%d", wv.source, len(wv.words), wv.dim)

    # --- drop empty / garbage rows, cap length ------------------------------------------
    counts.update({"excluded_no_words": 0, "excluded_garbage": 0, "truncated": 0})
    kept: list[tuple[Any, Tokenized, int, float]] = []
    for row, tok in zip(rows, toks):
        n = tok.num_words
        if not tok.words:
            counts["excluded_no_words"] += 1
            continue
        known = sum(table.lookup(w, wv)[1] is not None for w in tok.words) / len(tok.words)
        if known < config.min_known_ratio:
            counts["excluded_garbage"] += 1
            log.debug("garbage text dropped (%s, %s, %s): %.60r", row.video_id, row.class_name, row.kind, row.text)
            continue
        if n > config.max_tokens or len(tok.words) > config.max_tokens:
            counts["truncated"] += 1
            m = config.max_tokens
            tok = Tokenized(tok.words[:m], tok.lemmas[:m], tok.pos[:m], tok.stop[:m])
        kept.append((row, tok, n, known))
    if not kept:
        raise TextPriorsError(f"{descriptions}: no usable descriptions after tokenization (counts: {counts})")
    kept.sort(key=lambda item: (item[0].video_id, item[0].class_name, item[0].kind, item[0].text))

    # --- vocabulary and vectors ----------------------------------------------------------
    for _, tok, _, _ in kept:  # frequencies count only the words that are kept
        table.frequency.update(tok.words)
    forced = [w for c in classes for w in name_toks[c].words + tmpl_toks[c].words]
    vocab = build_vocab(table, forced, wv, config.max_vocab)
    matrix = build_matrix(vocab, table, wv, config.seed)

    # --- per-row token ids, action flags, masks -------------------------------------------
    class_words = {c: _class_words(name_toks[c]) for c in classes}
    cols: dict[str, list] = {
        k: []
        for k in (
            "video_id",
            "class_name",
            "kind",
            "text",
            "words",
            "token_ids",
            "pos",
            "is_action",
            "num_words",
            "truncated",
            "names_class",
            "known_ratio",
            "generation_flags",
            "model",
            "masked_input_ids",
            "target_ids",
            "mask_positions",
        )
    }
    key_bank: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    for row, tok, n, known in kept:
        ids = vocab.encode(tok.words)
        cw = class_words[row.class_name]
        names_class = any(w in cw or lemma in cw for w, lemma in zip(tok.words, tok.lemmas))
        is_action = [
            pos == "VERB" or (not stop and (w in cw or lemma in cw))
            for w, lemma, pos, stop in zip(tok.words, tok.lemmas, tok.pos, tok.stop)
        ]
        for name, value in (
            ("video_id", row.video_id),
            ("class_name", row.class_name),
            ("kind", row.kind),
            ("text", row.text),
            ("words", tok.words),
            ("token_ids", ids),
            ("pos", tok.pos),
            ("is_action", is_action),
            ("num_words", n),
            ("truncated", n > len(tok.words)),
            ("names_class", names_class),
            ("known_ratio", known),
            ("generation_flags", row.generation_flags),
            ("model", row.model),
        ):
            cols[name].append(value)
        if row.kind == "complete":
            weights = mask_weights(tok.pos, is_action, config.pos_weights, config.action_weight)
            rng = row_rng(config.seed, row.video_id, row.class_name, row.kind, row.text)
            masked = mask_row(ids, weights, config.mask_ratio, rng)
            cols["masked_input_ids"].append(masked.input_ids)
            cols["target_ids"].append(masked.target_ids)
            cols["mask_positions"].append(masked.positions)
        else:
            for name in ("masked_input_ids", "target_ids", "mask_positions"):
                cols[name].append(None)
            key_bank[row.class_name].append({"video_id": row.video_id, "token_ids": ids})

    per_class: dict[str, Any] = {}
    for c in classes:
        name_ids = vocab.encode(name_toks[c].words)
        t = tmpl_toks[c]
        t_ids = vocab.encode(t.words)
        t_action = [
            pos == "VERB" or (not stop and (w in class_words[c] or lemma in class_words[c]))
            for w, lemma, pos, stop in zip(t.words, t.lemmas, t.pos, t.stop)
        ]  # the rows' rule
        t_mask = mask_row(
            t_ids,
            mask_weights(t.pos, t_action, config.pos_weights, config.action_weight),
            config.mask_ratio,
            row_rng(config.seed, "<template>", c, templates[c]),
        )
        per_class[c] = {
            "name": names[c],
            "name_ids": name_ids,
            "template": templates[c],
            "template_ids": t_ids,
            "template_masked_input_ids": t_mask.input_ids,
            "template_mask_positions": t_mask.positions,
        }

    # --- counts --------------------------------------------------------------------------
    all_ids = [i for ids in cols["token_ids"] for i in ids]
    no_vector = sum(table.lookup(w, wv)[1] is None for ws in cols["words"] for w in ws)
    counts.update(
        {
            "usable": len(kept),
            "usable_key": sum(k == "key" for k in cols["kind"]),
            "usable_complete": sum(k == "complete" for k in cols["kind"]),
            "never_names_class": sum(not x for x in cols["names_class"]),
            "classes_without_key": sum(not key_bank[c] for c in classes),
            "tokens": len(all_ids),
            "unk_tokens": sum(i == UNK_ID for i in all_ids),
            "no_vector_tokens": int(no_vector),
            "vocab_size": len(vocab),
            "vocab_words_without_vector": sum(v == "unk" for v in vocab.vector_from),
        }
    )

    # --- write (meta.json last) ----------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until the end
    list_i32 = pa.list_(pa.int32())
    schema = pa.schema(
        [
            ("video_id", pa.string()),
            ("class_name", pa.string()),
            ("kind", pa.string()),
            ("text", pa.string()),
            ("words", pa.list_(pa.string())),
            ("token_ids", list_i32),
            ("pos", pa.list_(pa.string())),
            ("is_action", pa.list_(pa.bool_())),
            ("num_words", pa.int32()),
            ("truncated", pa.bool_()),
            ("names_class", pa.bool_()),
            ("known_ratio", pa.float32()),
            ("generation_flags", pa.string()),
            ("model", pa.string()),
            ("masked_input_ids", list_i32),
            ("target_ids", list_i32),
            ("mask_positions", list_i32),
        ]
    )
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), buffer, compression="zstd")
    _atomic_bytes(out / "tokens.parquet", buffer.getvalue().to_pybytes())
    specials = {"PAD": PAD_ID, "UNK": UNK_ID, "START": START_ID, "MASK": MASK_ID}
    _atomic_json(
        out / "vocab.json",
        {
            "schema_version": SCHEMA_VERSION,
            "tokens": vocab.tokens,
            "specials": specials,
            "special_tokens": list(SPECIALS),
            "frequency": vocab.frequency,
            "vector_from": vocab.vector_from,
            "config": config.to_dict(),
        },
    )
    npy = io.BytesIO()
    np.save(npy, matrix)
    _atomic_bytes(out / "word_vectors.npy", npy.getvalue())
    _atomic_json(out / "key_bank.json", {"schema_version": SCHEMA_VERSION, "classes": key_bank})
    _atomic_json(out / "classes.json", {"schema_version": SCHEMA_VERSION, "classes": classes, "per_class": per_class})
    info = spacy_info(nlp)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "descriptions": source,
        "ground_truth": None if ground_truth is None else str(ground_truth),
        "spacy": info,
        "word_vectors": {"source": wv.source, "dim": wv.dim},
        "seed": config.seed,
        "config": config.to_dict(),
        "counts": counts,
        "files": list(FILES),
        "seconds": round(time.perf_counter() - t0, 3),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _atomic_json(out / "meta.json", meta)
    log.info("text priors written to %s in %.2f s: %s", out, meta["seconds"], counts)
    return meta
