"""Read a text-priors folder for the training stage (KSM and CSR).

The folder is trusted only when ``meta.json`` exists (it is written last).  Token id
arrays are returned as int64 so they can go straight into ``torch.as_tensor`` and an
embedding lookup.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .build import FILES
from .config import MASK_ID, PAD_ID, START_ID, UNK_ID, ClassOrderError, TextPriorsError


@dataclass(frozen=True)
class CompleteItem:
    """One CSR example: the masked word ids, the original ids, and where the masks are."""

    input_ids: np.ndarray  # int64 (m,), <mask> at mask_positions
    target_ids: np.ndarray  # int64 (m,), the original ids
    mask_positions: np.ndarray  # int64 (k,), sorted 0-based positions
    text: str = field(default="", compare=False)


def _ids(values: Any) -> np.ndarray:
    return np.asarray(values if values is not None else [], dtype=np.int64)


class TextPriors:
    """Vocabulary, word vectors, key banks and masked complete descriptions."""

    pad_id, unk_id, start_id, mask_id = PAD_ID, UNK_ID, START_ID, MASK_ID

    def __init__(self, directory: str | os.PathLike, classes: list[str] | None = None):
        import pyarrow.parquet as pq

        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not self.directory.is_dir():
            raise TextPriorsError(f"{self.directory}: text-priors folder not found (no meta.json)")
        if not meta_path.is_file():
            raise TextPriorsError(f"{self.directory}: not a complete text-priors folder (meta.json missing)")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        for name in FILES:
            if not (self.directory / name).is_file():
                raise TextPriorsError(f"{self.directory / name}: missing")
        vocab = json.loads((self.directory / "vocab.json").read_text(encoding="utf-8"))
        self.vocab: list[str] = vocab["tokens"]
        self.vocab_info = vocab
        self.word_index = {w: i for i, w in enumerate(self.vocab)}
        self.word_vectors: np.ndarray = np.load(self.directory / "word_vectors.npy").astype(np.float32, copy=False)
        if self.word_vectors.shape[0] != len(self.vocab):
            raise TextPriorsError(
                f"{self.directory}: word_vectors.npy has {self.word_vectors.shape[0]} rows, vocab.json {len(self.vocab)}"
            )
        wanted = classes
        classes = json.loads((self.directory / "classes.json").read_text(encoding="utf-8"))
        self._per_class: dict[str, Any] = classes["per_class"]
        self.classes: list[str] = self._ordered(classes["classes"], wanted)
        bank = json.loads((self.directory / "key_bank.json").read_text(encoding="utf-8"))["classes"]
        self._bank = {c: [_ids(e["token_ids"]) for e in bank.get(c, [])] for c in self.classes}

        table = pq.read_table(self.directory / "tokens.parquet").to_pydict()
        self._key: dict[tuple[str, str], list[np.ndarray]] = {}
        self._complete: dict[tuple[str, str], list[CompleteItem]] = {}
        for i, kind in enumerate(table["kind"]):
            key = (table["video_id"][i], table["class_name"][i])
            if kind == "key":
                self._key.setdefault(key, []).append(_ids(table["token_ids"][i]))
            else:
                self._complete.setdefault(key, []).append(
                    CompleteItem(
                        _ids(table["masked_input_ids"][i]),
                        _ids(table["target_ids"][i]),
                        _ids(table["mask_positions"][i]),
                        table["text"][i],
                    )
                )

    def _ordered(self, stored: list[str], wanted: list[str] | None) -> list[str]:
        """The data set's class order (label index order) when given; the stored one otherwise."""
        if wanted is None:
            return list(stored)
        missing = [c for c in wanted if c not in self._per_class]
        extra = [c for c in stored if c not in set(wanted)]
        if missing or extra:
            raise ClassOrderError(
                f"{self.directory}: classes differ from the data set's: missing {missing}, not in the data set {extra} "
                f"(rebuild with --ground-truth)"
            )
        return list(wanted)

    # -- vocabulary ------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.word_vectors.shape[1])

    def encode(self, words: list[str]) -> np.ndarray:
        return _ids([self.word_index.get(w.lower(), UNK_ID) for w in words])

    def decode(self, ids: Any) -> list[str]:
        return [self.vocab[int(i)] for i in ids]

    def _check_class(self, class_name: str) -> dict[str, Any]:
        if class_name not in self._per_class:
            raise KeyError(f"class {class_name!r} is not in {self.directory} (classes: {self.classes})")
        return self._per_class[class_name]

    # -- KSM -------------------------------------------------------------------------------
    def key_tokens(self, video_id: str, class_name: str) -> list[np.ndarray]:
        """Key-description token ids of one video and class (empty list when none survived)."""
        return list(self._key.get((video_id, class_name), []))

    def key_bank(self, class_name: str) -> list[np.ndarray]:
        """All key-description token ids of a class, across videos (sorted by video id)."""
        self._check_class(class_name)
        return list(self._bank[class_name])

    def class_name_tokens(self, class_name: str) -> np.ndarray:
        return _ids(self._check_class(class_name)["name_ids"])

    # -- CSR -------------------------------------------------------------------------------
    def complete(self, video_id: str, class_name: str) -> list[CompleteItem]:
        return list(self._complete.get((video_id, class_name), []))

    def template_complete(self, class_name: str) -> CompleteItem:
        entry = self._check_class(class_name)
        return CompleteItem(
            _ids(entry["template_masked_input_ids"]),
            _ids(entry["template_ids"]),
            _ids(entry["template_mask_positions"]),
            entry["template"],
        )

    def videos(self) -> list[str]:
        return sorted({v for v, _ in self._key} | {v for v, _ in self._complete})


def load_text_priors(directory: str | os.PathLike, classes: list[str] | None = None) -> TextPriors:
    """Read a text-priors folder.  Pass the data set's ``classes`` (ground_truth.json order) to
    get ``tp.classes`` in label-index order, with a clear error when the class sets differ."""
    return TextPriors(directory, classes)
