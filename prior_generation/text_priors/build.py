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
word of the row's class name ("throws" in a JavelinThrow description); see :mod:`.encode`.

Steps of :func:`build_text_priors`: read the descriptions and fix the class list; tokenize
with spaCy; load the word vectors of the words met; drop empty and garbage rows and cap
the length; build the vocabulary and vector matrix; encode rows and classes (:mod:`.encode`);
count; write the folder.
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

from wtal_data.word_vectors import WordVectors, load_word_vectors

from .config import MASK_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, TextPriorsConfig, TextPriorsError
from .descriptions import DescriptionRow, read_descriptions
from .encode import ClassTexts, KeptRow, encode_classes, encode_rows
from .tokenizer import Tokenized, load_spacy, spacy_info, tokenize
from .vocab import LemmaTable, Vocab, build_matrix, build_vocab

log = logging.getLogger("prior_generation.text_priors")

SCHEMA_VERSION = 1
FILES = ("tokens.parquet", "vocab.json", "word_vectors.npy", "key_bank.json", "classes.json", "meta.json")


def _atomic_bytes(path: Path, data: bytes) -> None:
    from wtal_common.io import atomic_write_bytes

    atomic_write_bytes(path, data)


def _atomic_json(path: Path, obj: Any) -> None:
    _atomic_bytes(path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"))


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
    config = config or TextPriorsConfig()
    config.validate()
    t0 = time.perf_counter()
    rows, counts, source = read_descriptions(descriptions)
    if not rows:
        raise TextPriorsError(f"{descriptions}: no usable descriptions (counts: {counts})")
    classes = resolve_classes(descriptions, rows, ground_truth)
    log.info("%d usable descriptions of %d classes from %s (%s)", len(rows), len(classes), descriptions, counts)

    nlp = load_spacy(config.spacy_model)
    toks = tokenize(
        nlp,
        [r.text for r in rows],
        config.batch_size,
        progress=progress,
        max_words=config.max_tokens,
        n_process=config.n_process,
    )
    texts = ClassTexts.tokenize(nlp, classes, config)
    table, wv = load_needed_vectors(toks + texts.tokenized(), config)
    kept = usable_rows(rows, toks, table, wv, config, counts)
    if not kept:
        raise TextPriorsError(f"{descriptions}: no usable descriptions after tokenization (counts: {counts})")

    for _, tok, _, _ in kept:  # frequencies count only the words that are kept
        table.frequency.update(tok.words)
    vocab = build_vocab(table, texts.forced_words(), wv, config.max_vocab)
    matrix = build_matrix(vocab, table, wv, config.seed)
    class_words = texts.class_words()
    cols, key_bank = encode_rows(kept, vocab, class_words, classes, config)
    per_class = encode_classes(texts, vocab, class_words, config)
    counts.update(output_counts(cols, key_bank, table, wv, vocab))

    out = Path(output_dir)
    write_data_files(out, cols, vocab, matrix, key_bank, classes, per_class, config)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "descriptions": source,
        "ground_truth": None if ground_truth is None else str(ground_truth),
        "spacy": spacy_info(nlp),
        "word_vectors": {"source": wv.source, "dim": wv.dim},
        "seed": config.seed,
        "config": config.to_dict(),
        "counts": counts,
        "files": list(FILES),
        "seconds": round(time.perf_counter() - t0, 3),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _atomic_json(out / "meta.json", meta)  # last: marks the folder complete
    log.info("text priors written to %s in %.2f s: %s", out, meta["seconds"], counts)
    return meta


def resolve_classes(
    descriptions: str | os.PathLike, rows: list[DescriptionRow], ground_truth: str | os.PathLike | None
) -> list[str]:
    """The data set's classes in its order when a ground truth is given; else the rows' classes, sorted."""
    gt_classes = _read_classes(ground_truth)
    row_classes = sorted({r.class_name for r in rows})
    if gt_classes is not None:
        unknown = [c for c in row_classes if c not in gt_classes]
        if unknown:
            raise TextPriorsError(f"{descriptions}: classes {unknown} are not in {ground_truth}")
        return list(gt_classes)
    log.warning(
        "no --ground-truth: classes are those of the descriptions, sorted (%d); pass the data set's "
        "ground_truth.json to fix their order and include classes without descriptions",
        len(row_classes),
    )
    return row_classes


def load_needed_vectors(toks: list[Tokenized], config: TextPriorsConfig) -> tuple[LemmaTable, WordVectors]:
    """Word vectors of only the words (and lemmas) we can meet, and the lemma table that looks them up."""
    table = LemmaTable()
    for tok in toks:
        table.add(tok.words, tok.lemmas, count=False)
    wv = load_word_vectors(config.word_vectors, restrict_to=table.candidates())
    log.info("word vectors %s: %d of the needed words found, d=%d", wv.source, len(wv.words), wv.dim)
    return table, wv


def usable_rows(
    rows: list[DescriptionRow],
    toks: list[Tokenized],
    table: LemmaTable,
    wv: WordVectors,
    config: TextPriorsConfig,
    counts: dict[str, int],
) -> list[KeptRow]:
    """Drop rows without words or with too few known words (garbage), cap the rest; sorted.

    Updates ``counts`` (excluded_no_words, excluded_garbage, truncated).  Sorted by
    (video_id, class_name, kind, text), the row order of tokens.parquet.
    """
    counts.update({"excluded_no_words": 0, "excluded_garbage": 0, "truncated": 0})
    kept: list[KeptRow] = []
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
        kept.append(KeptRow(row, tok, n, known))
    kept.sort(key=lambda item: (item.row.video_id, item.row.class_name, item.row.kind, item.row.text))
    return kept


def output_counts(
    cols: dict[str, list],
    key_bank: dict[str, list[dict[str, Any]]],
    table: LemmaTable,
    wv: WordVectors,
    vocab: Vocab,
) -> dict[str, int]:
    """What was written: rows per kind, tokens, <unk> and vector-less tokens, vocabulary size."""
    all_ids = [i for ids in cols["token_ids"] for i in ids]
    no_vector = sum(table.lookup(w, wv)[1] is None for ws in cols["words"] for w in ws)
    return {
        "usable": len(cols["kind"]),
        "usable_key": sum(k == "key" for k in cols["kind"]),
        "usable_complete": sum(k == "complete" for k in cols["kind"]),
        "never_names_class": sum(not x for x in cols["names_class"]),
        "classes_without_key": sum(not bank for bank in key_bank.values()),
        "tokens": len(all_ids),
        "unk_tokens": sum(i == UNK_ID for i in all_ids),
        "no_vector_tokens": int(no_vector),
        "vocab_size": len(vocab),
        "vocab_words_without_vector": sum(v == "unk" for v in vocab.vector_from),
    }


def tokens_schema():
    """The Arrow schema of tokens.parquet (column order: :data:`.encode.COLUMNS`)."""
    import pyarrow as pa

    list_i32 = pa.list_(pa.int32())
    return pa.schema(
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


def write_data_files(
    out: Path,
    cols: dict[str, list],
    vocab: Vocab,
    matrix: np.ndarray,
    key_bank: dict[str, list[dict[str, Any]]],
    classes: list[str],
    per_class: dict[str, Any],
    config: TextPriorsConfig,
) -> None:
    """Every file but meta.json, each atomically; an old meta.json is removed first (folder incomplete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until the end
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pydict(cols, schema=tokens_schema()), buffer, compression="zstd")
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
