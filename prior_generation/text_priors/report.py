"""Coverage report of a text-priors folder: is the text fit to train on?

Prints what a reader needs to judge the priors: how many descriptions were dropped and
why, the out-of-vocabulary rate, sentence lengths, action words per sentence, and how many
masked positions are verbs / action words (paper §3.2 wants action words masked most).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .config import UNK_ID, TextPriorsError


def _dist(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [0, 10, 50, 90, 100])
    return {
        "n": int(a.size),
        "mean": round(float(a.mean()), 2),
        "min": float(q[0]),
        "p10": float(q[1]),
        "median": float(q[2]),
        "p90": float(q[3]),
        "max": float(q[4]),
    }


def compute_report(directory: str | os.PathLike) -> dict[str, Any]:
    import pyarrow.parquet as pq

    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise TextPriorsError(f"{directory}: not a complete text-priors folder (meta.json missing)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    t = pq.read_table(directory / "tokens.parquet").to_pydict()
    report: dict[str, Any] = {
        "directory": str(directory),
        "descriptions": meta["descriptions"]["path"],
        "spacy": f"{meta['spacy']['name']} {meta['spacy']['version']}",
        "word_vectors": f"{meta['word_vectors']['source']} (d={meta['word_vectors']['dim']})",
        "counts": meta["counts"],
        "by_kind": {},
    }
    for kind in ("key", "complete"):
        idx = [i for i, k in enumerate(t["kind"]) if k == kind]
        tokens = [x for i in idx for x in t["token_ids"][i]]
        entry: dict[str, Any] = {
            "rows": len(idx),
            "oov_rate": round(sum(x == UNK_ID for x in tokens) / max(1, len(tokens)), 4),
            "words": _dist([t["num_words"][i] for i in idx]),
            "truncated": sum(bool(t["truncated"][i]) for i in idx),
            "action_words_per_sentence": _dist([sum(t["is_action"][i]) for i in idx]),
            "never_names_class": sum(not t["names_class"][i] for i in idx),
        }
        if kind == "complete":
            masked_pos = [(t["pos"][i][p], t["is_action"][i][p]) for i in idx for p in t["mask_positions"][i]]
            n_masked = len(masked_pos)
            n_words = sum(len(t["token_ids"][i]) for i in idx)
            entry["masked"] = {
                "positions": n_masked,
                "share_of_words": round(n_masked / max(1, n_words), 4),
                "verb_share": round(sum(p == "VERB" for p, _ in masked_pos) / max(1, n_masked), 4),
                "noun_share": round(sum(p in ("NOUN", "PROPN") for p, _ in masked_pos) / max(1, n_masked), 4),
                "action_share": round(sum(a for _, a in masked_pos) / max(1, n_masked), 4),
                "verb_share_of_all_words": round(
                    sum(p == "VERB" for i in idx for p in t["pos"][i]) / max(1, n_words), 4
                ),
            }
        report["by_kind"][kind] = entry
    return report


def format_report(report: dict[str, Any]) -> str:
    c = report["counts"]
    lines = [
        f"text priors: {report['directory']}",
        f"  source: {report['descriptions']}",
        f"  spaCy: {report['spacy']}; word vectors: {report['word_vectors']}",
        f"  rows: input {c['input_rows']}, usable {c['usable']} (key {c['usable_key']}, complete {c['usable_complete']})",
        f"  excluded: error {c['excluded_error']}, empty {c['excluded_empty']}, no words {c['excluded_no_words']}, "
        f"garbage {c['excluded_garbage']}; duplicates removed {c['duplicates_removed']}; truncated {c['truncated']}",
        f"  vocab {c['vocab_size']} (words without vector {c['vocab_words_without_vector']}); tokens {c['tokens']}, "
        f"<unk> {c['unk_tokens']} ({c['unk_tokens'] / max(1, c['tokens']):.2%}), "
        f"no word vector {c['no_vector_tokens']} ({c['no_vector_tokens'] / max(1, c['tokens']):.2%})",
        f"  classes without a key description: {c['classes_without_key']}",
    ]
    for kind, e in report["by_kind"].items():
        w, a = e["words"], e["action_words_per_sentence"]
        lines.append(
            f"  [{kind}] rows {e['rows']}, OOV rate {e['oov_rate']:.2%}, never names class {e['never_names_class']}, "
            f"truncated {e['truncated']}"
        )
        if w.get("n"):
            lines.append(
                f"    words/sentence: mean {w['mean']}, min {w['min']:.0f}, p10 {w['p10']:.0f}, "
                f"median {w['median']:.0f}, p90 {w['p90']:.0f}, max {w['max']:.0f}"
            )
            lines.append(f"    action words/sentence: mean {a['mean']}, median {a['median']:.0f}, max {a['max']:.0f}")
        if "masked" in e:
            m = e["masked"]
            lines.append(
                f"    masked positions {m['positions']} ({m['share_of_words']:.2%} of words): verbs {m['verb_share']:.2%}, "
                f"nouns {m['noun_share']:.2%}, action words {m['action_share']:.2%} "
                f"(verbs are {m['verb_share_of_all_words']:.2%} of all words)"
            )
    return "\n".join(lines)
