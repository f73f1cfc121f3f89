"""Token ids, action-word flags and masks: the rows of ``tokens.parquet`` and ``classes.json``.

An action word (``is_action``) is a VERB, or a non-stop word whose text or lemma is a word
of the row's class name ("throws" in a JavelinThrow description).  Complete descriptions
and the class templates are masked with :func:`.masking.mask_row`, seeded per row, so the
masks do not depend on the order or the number of rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .config import TextPriorsConfig
from .descriptions import DescriptionRow
from .masking import mask_row, mask_weights, row_rng
from .tokenizer import Tokenized, humanize_class_name, tokenize
from .vocab import Vocab

# The columns of tokens.parquet, in file order (types in .build.TOKENS_SCHEMA).
COLUMNS = (
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
MASK_COLUMNS = ("masked_input_ids", "target_ids", "mask_positions")  # complete rows only


class KeptRow(NamedTuple):
    """A usable description: its row, its words (capped at max_tokens) and their statistics."""

    row: DescriptionRow
    tok: Tokenized
    num_words: int  # before the cap
    known_ratio: float  # share of words with a word vector


@dataclass
class ClassTexts:
    """Each class's humanized name and its template sentence, tokenized."""

    classes: list[str]
    names: dict[str, str]
    templates: dict[str, str]
    name_toks: dict[str, Tokenized]
    template_toks: dict[str, Tokenized]

    @classmethod
    def tokenize(cls, nlp: Any, classes: Sequence[str], config: TextPriorsConfig) -> ClassTexts:
        names = {c: humanize_class_name(c) for c in classes}
        templates = {c: config.template.format(cls=names[c]) for c in classes}
        name_toks = dict(zip(classes, tokenize(nlp, [names[c] for c in classes], config.batch_size)))
        template_toks = dict(zip(classes, tokenize(nlp, [templates[c] for c in classes], config.batch_size)))
        return cls(list(classes), names, templates, name_toks, template_toks)

    def tokenized(self) -> list[Tokenized]:
        return list(self.name_toks.values()) + list(self.template_toks.values())

    def forced_words(self) -> list[str]:
        """Words of every class name and template: always in the vocabulary."""
        return [w for c in self.classes for w in self.name_toks[c].words + self.template_toks[c].words]

    def class_words(self) -> dict[str, set[str]]:
        """Per class, the content words of its name (text and lemma), used to flag action words."""
        out: dict[str, set[str]] = {}
        for c in self.classes:
            tok = self.name_toks[c]
            out[c] = {
                form for w, lemma, stop in zip(tok.words, tok.lemmas, tok.stop) if not stop for form in (w, lemma)
            }
        return out


def action_flags(tok: Tokenized, class_words: set[str]) -> list[bool]:
    """Per word: a VERB, or a non-stop word of the class name (the module docstring's rule)."""
    return [
        pos == "VERB" or (not stop and (w in class_words or lemma in class_words))
        for w, lemma, pos, stop in zip(tok.words, tok.lemmas, tok.pos, tok.stop)
    ]


def names_class(tok: Tokenized, class_words: set[str]) -> bool:
    """Whether any word (text or lemma) is a word of the class name."""
    return any(w in class_words or lemma in class_words for w, lemma in zip(tok.words, tok.lemmas))


def encode_rows(
    kept: Sequence[KeptRow],
    vocab: Vocab,
    class_words: Mapping[str, set[str]],
    classes: Sequence[str],
    config: TextPriorsConfig,
) -> tuple[dict[str, list], dict[str, list[dict[str, Any]]]]:
    """The tokens.parquet columns (one entry per kept row) and the key-description bank per class."""
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    key_bank: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    for row, tok, n, known in kept:
        ids = vocab.encode(tok.words)
        cw = class_words[row.class_name]
        is_action = action_flags(tok, cw)
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
            ("names_class", names_class(tok, cw)),
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
            for name in MASK_COLUMNS:
                cols[name].append(None)
            key_bank[row.class_name].append({"video_id": row.video_id, "token_ids": ids})
    return cols, key_bank


def encode_classes(
    texts: ClassTexts, vocab: Vocab, class_words: Mapping[str, set[str]], config: TextPriorsConfig
) -> dict[str, Any]:
    """classes.json's ``per_class``: name and template ids, and the template's mask (the rows' rule)."""
    per_class: dict[str, Any] = {}
    for c in texts.classes:
        t = texts.template_toks[c]
        t_ids = vocab.encode(t.words)
        t_mask = mask_row(
            t_ids,
            mask_weights(t.pos, action_flags(t, class_words[c]), config.pos_weights, config.action_weight),
            config.mask_ratio,
            row_rng(config.seed, "<template>", c, texts.templates[c]),
        )
        per_class[c] = {
            "name": texts.names[c],
            "name_ids": vocab.encode(texts.name_toks[c].words),
            "template": texts.templates[c],
            "template_ids": t_ids,
            "template_masked_input_ids": t_mask.input_ids,
            "template_mask_positions": t_mask.positions,
        }
    return per_class
