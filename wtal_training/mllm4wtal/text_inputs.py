"""Turn text priors into padded token tensors for one training batch.

The text priors (``prior_generation.text_priors.TextPriors``) hold, per video and class,
MLLM key descriptions (KSM) and masked complete descriptions (CSR) as token-id arrays
into ``tp.vocab`` / ``tp.word_vectors``.  This module only *selects* and *pads*; the
sampling is driven by a numpy Generator the caller seeds from (seed, iteration), so a
run is reproducible and a resumed run draws the same sentences.

Why one key description per class per batch (not per video): the paper's query matrix
is (C+1) x 2048 and shared by every snippet it is matched against; per-video key
descriptions exist only for the classes the video contains.  For a class present in the
batch we draw the description of one of the batch's videos that contain it (the video's
own MLLM prior); for an absent class we draw one from the class's key bank (the
descriptions of all training videos of that class), so present and absent classes get
text from the same distribution and the label cannot leak through the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wtal_common.errors import InputError


class TextPriorError(InputError):
    """The text priors are missing something a batch needs; the message names it."""


@dataclass
class KeyQueryTokens:
    ids: torch.Tensor  # (C, L) long, padded with pad_id
    padding: torch.Tensor  # (C, L) bool, True on padding


@dataclass
class CompleteTokens:
    ids: torch.Tensor  # (B, m) long masked input ids, padded with pad_id
    padding: torch.Tensor  # (B, m) bool, True on padding
    targets: torch.Tensor  # (B, m) long, the true word id at masked positions, -100 elsewhere


def _pad(seqs: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    padding = torch.ones((len(seqs), length), dtype=torch.bool)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, : len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
            padding[i, : len(s)] = False
    return ids, padding


def _present_classes(labels: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(row > 0, as_tuple=False).flatten().tolist() for row in labels.detach().cpu()]


def key_query_tokens(
    tp: Any, video_ids: Sequence[str], labels: torch.Tensor, rng: np.random.Generator, text: str = "key"
) -> KeyQueryTokens:
    """One token sequence per class (C of them) for the KSM text encoder.

    ``text == "class_name"`` uses the class-name tokens for every class (Table 5 ablation).
    """
    classes = list(tp.classes)
    if text == "class_name":
        seqs = [np.asarray(tp.class_name_tokens(c)) for c in classes]
        return KeyQueryTokens(*_pad(seqs, tp.pad_id))
    if text != "key":
        raise TextPriorError(f"config field ksm_text must be 'key' or 'class_name', got {text!r}")
    present = _present_classes(labels)
    seqs = []
    for c, name in enumerate(classes):
        owners = [vid for vid, cls in zip(video_ids, present) if c in cls]
        pool: list[np.ndarray] = []
        if owners:
            owner = owners[int(rng.integers(len(owners)))]
            pool = list(tp.key_tokens(owner, name))
        if not pool:
            pool = list(tp.key_bank(name))
        if not pool:  # a class with no key description anywhere: fall back to its name
            pool = [np.asarray(tp.class_name_tokens(name))]
        seqs.append(np.asarray(pool[int(rng.integers(len(pool)))]))
    return KeyQueryTokens(*_pad(seqs, tp.pad_id))


def resampled_mask(item: Any, mask_id: int, unk_id: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, targets) with a fresh random third of the words masked.

    The paper (after [40]) masks "1/3 of the words" at random; Boosting-WTAL redraws the mask
    on every pass.  k = max(1, round(m / 3)) positions, uniformly without replacement among
    the words that are not <unk> (an <unk> target teaches nothing; used only if nothing else
    is left).  Needs the full original ids (``target_ids`` of length m).
    """
    original = np.asarray(item.target_ids, dtype=np.int64)
    m = len(original)
    if m == 0:
        return original, original
    k = max(1, int(round(m / 3)))
    known = np.flatnonzero(original != unk_id)
    pool = known if len(known) >= k else np.arange(m)
    positions = np.sort(rng.choice(pool, size=k, replace=False))
    inputs = original.copy()
    inputs[positions] = mask_id
    targets = np.full(m, -100, dtype=np.int64)
    targets[positions] = original[positions]
    return inputs, targets


def _item_arrays(item: Any, video_id: str, cls: str, mask_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, targets with -100 off the masked positions); checks the masking."""
    inputs = np.asarray(item.input_ids, dtype=np.int64)
    positions = np.asarray(item.mask_positions, dtype=np.int64)
    target_ids = np.asarray(item.target_ids, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= len(inputs)):
        raise TextPriorError(f"complete description of video {video_id!r}, class {cls!r}: mask position out of range")
    if not np.all(inputs[positions] == mask_id):
        raise TextPriorError(
            f"complete description of video {video_id!r}, class {cls!r}: input ids at mask positions are not "
            f"the MASK id {mask_id} (the words must really be masked)"
        )
    targets = np.full(len(inputs), -100, dtype=np.int64)
    if len(target_ids) == len(inputs):
        targets[positions] = target_ids[positions]
    elif len(target_ids) == len(positions):
        targets[positions] = target_ids
    else:
        raise TextPriorError(
            f"complete description of video {video_id!r}, class {cls!r}: "
            f"{len(target_ids)} target ids for {len(inputs)} words and {len(positions)} masks"
        )
    return inputs, targets


def complete_tokens(
    tp: Any,
    video_ids: Sequence[str],
    labels: torch.Tensor,
    rng: np.random.Generator,
    text: str = "complete",
    resample_mask: bool = False,
) -> CompleteTokens:
    """One masked complete description per video: a random present class, a random sentence.

    ``text == "template"`` uses the fixed "a video of the [CLS]" item (Table 5 ablation).
    A video with no label gets an empty sentence (no reconstruction target).
    ``resample_mask``: ignore the stored mask and draw a new random third from ``rng``
    (config ``csr_mask: resample``); otherwise the text-priors stage's mask is used, checked.
    """
    if text not in ("complete", "template"):
        raise TextPriorError(f"config field csr_text must be 'complete' or 'template', got {text!r}")
    classes = list(tp.classes)
    inputs, targets = [], []
    for vid, present in zip(video_ids, _present_classes(labels)):
        if not present:
            inputs.append(np.zeros(0, np.int64))
            targets.append(np.zeros(0, np.int64))
            continue
        name = classes[present[int(rng.integers(len(present)))]]
        items = [tp.template_complete(name)] if text == "template" else list(tp.complete(vid, name))
        if not items:
            items = [tp.template_complete(name)]
        item = items[int(rng.integers(len(items)))]
        if resample_mask:
            x, y = resampled_mask(item, tp.mask_id, tp.unk_id, rng)
        else:
            x, y = _item_arrays(item, vid, name, tp.mask_id)
        inputs.append(x)
        targets.append(y)
    ids, padding = _pad(inputs, tp.pad_id)
    target, _ = _pad(targets, -100)
    return CompleteTokens(ids, padding, target)
