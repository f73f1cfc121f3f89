"""Vocabulary and word-vector matrix, with the out-of-vocabulary (OOV) rule.

Vocabulary (ids are fixed by this order)::

    0 <pad>, 1 <unk>, 2 <start>, 3 <mask>
    then every word of the class names and the template (always present, so the
    "class name" and template arms never collapse to <unk>)
    then description words that have a word vector, most frequent first (ties: alphabetical),
    until ``max_vocab`` entries in total.

OOV rule (a word is looked up lower-cased, then by its lemma(s), most frequent first):

* a description word with no vector under either form never gets an id: it maps to <unk>
  (counted as "no vector"); a word with a vector but beyond the frequency cap also maps to
  <unk> (counted as "capped").  So every description word with an id has a real vector
  and the CSR targets are real words;
* a class-name/template word with no vector (e.g. a misspelt class such as "forniture")
  keeps its id and gets the <unk> vector;
* rows: <pad> = zeros; <unk> = mean vector of the vocabulary words that have one;
  <start> and <mask> = seeded N(0, (0.1 s)^2) with s the mean per-dimension standard
  deviation of those vectors (small, distinct, learnable by the trainer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wtal_data.word_vectors import WordVectors

from .config import MASK_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, TextPriorsError


@dataclass
class Vocab:
    tokens: list[str]
    frequency: list[int]  # occurrences in the usable descriptions (specials: 0)
    vector_from: list[str]  # "text", "lemma", "unk" (no vector) or "special"

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.tokens)}

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.index.get(w, UNK_ID) for w in words]

    def __len__(self) -> int:
        return len(self.tokens)


class LemmaTable:
    """For each word text, how often each lemma was seen (spaCy lemmas depend on context)."""

    def __init__(self) -> None:
        self.lemmas: dict[str, Counter] = {}
        self.frequency: Counter = Counter()
        self._cache: dict[tuple[int, str], tuple[str, np.ndarray | None]] = {}

    def add(self, words: Sequence[str], lemmas: Sequence[str], count: bool = True) -> None:
        for w, lemma in zip(words, lemmas):
            self.lemmas.setdefault(w, Counter())[lemma] += 1
            if count:
                self.frequency[w] += 1

    def candidates(self) -> set[str]:
        out = set(self.lemmas)
        for counter in self.lemmas.values():
            out.update(counter)
        return out

    def lookup(self, word: str, wv: WordVectors) -> tuple[str, np.ndarray | None]:
        key = (id(wv), word)
        if key not in self._cache:
            self._cache[key] = self._lookup(word, wv)
        return self._cache[key]

    def _lookup(self, word: str, wv: WordVectors) -> tuple[str, np.ndarray | None]:
        vec = wv.get(word)
        if vec is not None:
            return "text", vec
        for lemma, _ in sorted(self.lemmas.get(word, Counter()).items(), key=lambda kv: (-kv[1], kv[0])):
            vec = wv.get(lemma)
            if vec is not None:
                return "lemma", vec
        return "unk", None


def build_vocab(table: LemmaTable, forced: Sequence[str], wv: WordVectors, max_vocab: int) -> Vocab:
    forced = [w for w in dict.fromkeys(forced) if w not in SPECIALS]
    tokens = list(SPECIALS) + forced
    room = max(0, max_vocab - len(tokens))
    forced_set = set(forced)
    with_vector = [w for w in table.frequency if w not in forced_set and table.lookup(w, wv)[1] is not None]
    with_vector.sort(key=lambda w: (-table.frequency[w], w))
    tokens += with_vector[:room]
    frequency = [0] * len(SPECIALS) + [int(table.frequency.get(w, 0)) for w in tokens[len(SPECIALS) :]]
    vector_from = ["special"] * len(SPECIALS) + [table.lookup(w, wv)[0] for w in tokens[len(SPECIALS) :]]
    return Vocab(tokens, frequency, vector_from)


def build_matrix(vocab: Vocab, table: LemmaTable, wv: WordVectors, seed: int) -> np.ndarray:
    """(V, d) float32 matrix following the rule in the module docstring."""
    dim = wv.dim
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, word in enumerate(vocab.tokens):
        if i < len(SPECIALS):
            continue
        _, vec = table.lookup(word, wv)
        if vec is not None:
            matrix[i] = vec
            found[i] = True
    if not found.any():
        raise TextPriorsError(f"no vocabulary word has a vector in '{wv.source}': wrong word-vector file?")
    known = matrix[found]
    unk = known.mean(axis=0)
    matrix[~found] = unk
    matrix[PAD_ID] = 0.0
    matrix[UNK_ID] = unk
    scale = 0.1 * float(known.std(axis=0).mean()) if len(known) > 1 else 0.1
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E47]))
    matrix[START_ID] = rng.normal(0.0, scale, dim)
    matrix[MASK_ID] = rng.normal(0.0, scale, dim)
    return matrix.astype(np.float32)
