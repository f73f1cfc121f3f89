"""Which words of a complete description CSR must reconstruct (paper §3.2).

``k = max(1, round_half_up(n * mask_ratio))`` of the ``n`` words are masked, sampled
without replacement with weights: an action word (verb, or a word of the class name)
gets ``action_weight``; other words get ``pos_weights[POS]`` (``OTHER`` when the tag is not
listed).  Words that map to <unk> are only masked when fewer than ``k`` other words exist
(their target would be <unk>, which teaches nothing).

Sampling is weighted reservoir sampling (Efraimidis & Spirakis: keep the ``k`` largest
``log(u) / w``), with ``u`` drawn from a generator seeded by a hash of (seed, video id,
class, kind, text), so a row's mask is the same whatever the row order or the other rows.

The masked input really contains <mask> at the masked positions (the public ancestor
computed the mask and then trained on the unmasked sentence); targets keep the original ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import MASK_ID, UNK_ID


@dataclass
class Masked:
    input_ids: list[int]
    target_ids: list[int]
    positions: list[int]  # sorted, 0-based word positions


def num_to_mask(n: int, ratio: float) -> int:
    if n <= 0:
        return 0
    return min(n, max(1, int(math.floor(n * ratio + 0.5))))


def row_rng(seed: int, *key: str) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join([str(seed), *key]).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def mask_weights(
    pos: Sequence[str], is_action: Sequence[bool], pos_weights: dict[str, float], action_weight: float
) -> np.ndarray:
    other = pos_weights.get("OTHER", 1.0)
    return np.array(
        [action_weight if act else pos_weights.get(tag, other) for tag, act in zip(pos, is_action)], dtype=np.float64
    )


def mask_row(
    token_ids: Sequence[int],
    weights: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
) -> Masked:
    n = len(token_ids)
    k = num_to_mask(n, ratio)
    ids = np.asarray(token_ids, dtype=np.int64)
    u = rng.random(n)
    keys = np.log(np.maximum(u, 1e-300)) / weights
    # <unk> words go last: they are only chosen when the others do not suffice.
    keys = np.where(ids == UNK_ID, keys - 1e12, keys)
    positions = sorted(int(i) for i in np.argsort(-keys, kind="stable")[:k])
    masked = ids.copy()
    masked[positions] = MASK_ID
    return Masked(masked.tolist(), ids.tolist(), positions)
