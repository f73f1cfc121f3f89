"""The training set held on the training device, and batches built there.

All training snippets are packed in one (N, D) tensor on the device; a batch is a
handful of integer tensors (video choice and random-perturb snippet indices) and one
``index_select``, so no Python loop over videos or numpy work happens per iteration.

Batch recipe (CO2-Net/DELU): ``num_similar`` pairs of distinct videos sharing a class
(for the co-activity loss), then random training videos; every video is resampled to
exactly ``max_seqlen`` snippets by random-perturb sampling (one random snippet from each
of ``max_seqlen`` equal bins, bins inclusive of their right edge as in the public code),
which up-samples short videos and down-samples long ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Sequence as SequenceABC

import numpy as np
import torch

from wtal_data.canonical import DatasetError, FeatureStore

from .models.base import Batch


class DeviceFeatureSet:
    """Features, lengths and multi-hot labels of a list of videos, on one device."""

    def __init__(
        self,
        store: FeatureStore,
        gt: dict,
        video_ids: Sequence[str],
        device: torch.device | str,
        source: str = "features",
    ) -> None:
        if not video_ids:
            raise DatasetError(f"{source}: no videos to load")
        self.video_ids = list(video_ids)
        self.classes = list(gt["classes"])
        class_index = {c: i for i, c in enumerate(self.classes)}
        lengths = np.array([store.index[v][1] for v in self.video_ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        packed = np.empty((int(lengths.sum()), store.feature_dim), dtype=np.float32)
        for vid, off, n in zip(self.video_ids, offsets, lengths):
            packed[off : off + n] = store[vid]
        bad = ~np.isfinite(packed).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            vid = self.video_ids[int(np.searchsorted(offsets, row, side="right") - 1)]
            raise DatasetError(
                f"{source}: video '{vid}' has NaN or inf features ({int(bad.sum())} snippet(s) in the set)"
            )
        labels = np.zeros((len(self.video_ids), len(self.classes)), dtype=np.float32)
        for i, vid in enumerate(self.video_ids):
            for label in gt["database"][vid].get("labels", []):
                labels[i, class_index[label]] = 1.0
        self.device = torch.device(device)
        self.features = torch.from_numpy(packed).to(self.device)
        self.lengths = torch.from_numpy(lengths).to(self.device)
        self.offsets = torch.from_numpy(offsets).to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.feature_dim = store.feature_dim
        # videos of each class, padded (C, max_count), for same-class pairs
        members = [np.flatnonzero(labels[:, c]) for c in range(len(self.classes))]
        width = max(1, max(len(m) for m in members))
        table = np.zeros((len(self.classes), width), dtype=np.int64)
        for c, m in enumerate(members):
            table[c, : len(m)] = m
        counts = np.array([len(m) for m in members], dtype=np.int64)
        self.class_members = torch.from_numpy(table).to(self.device)
        self.class_counts = torch.from_numpy(counts).to(self.device)
        self.pair_classes = torch.from_numpy(np.flatnonzero(counts >= 2)).to(self.device)

    def __len__(self) -> int:
        return len(self.video_ids)

    def video(self, i: int) -> torch.Tensor:
        off, n = int(self.offsets[i]), int(self.lengths[i])
        return self.features[off : off + n]


class LazyVideoIds(SequenceABC):
    """The batch's video ids as a list, computed from the device index tensor on first use."""

    def __init__(self, index: torch.Tensor, names: list[str]) -> None:
        self._index, self._names, self._ids = index, names, None

    def _resolve(self) -> list[str]:
        if self._ids is None:
            self._ids = [self._names[i] for i in self._index.tolist()]
        return self._ids

    def __getitem__(self, item):
        return self._resolve()[item]

    def __len__(self) -> int:
        return int(self._index.shape[0])

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __repr__(self) -> str:
        return repr(self._resolve())


def random_perturb_indices(lengths: torch.Tensor, num_segments: int, generator: torch.Generator) -> torch.Tensor:
    """(B, num_segments) snippet indices: one random pick per bin, vectorised.

    Bin i spans ``floor(i L / S)`` to ``floor((i+1) L / S)`` inclusive (the last bin to
    L-1); a video of exactly S snippets is returned in order.
    """
    device = lengths.device
    L = lengths.unsqueeze(1)  # (B, 1)
    i = torch.arange(num_segments, device=device).unsqueeze(0)
    lo = (i * L) // num_segments
    hi = ((i + 1) * L) // num_segments
    hi = torch.where(i == num_segments - 1, L - 1, hi)
    hi = torch.maximum(hi, lo)
    u = torch.rand(lo.shape, generator=generator, device=device)
    idx = lo + (u * (hi - lo + 1).to(u.dtype)).long()
    idx = torch.minimum(idx, L - 1)
    exact = lengths == num_segments
    return torch.where(exact.unsqueeze(1), i.expand_as(idx), idx)


class Sampler:
    """What the training loop draws batches from (the engine's :class:`BatchSampler`, or a
    method's own from :meth:`~.models.base.BaseMethod.training_sampler`).

    ``sample()`` gives the next :class:`Batch`; ``generator`` is the random stream the resume
    state saves.  The rest are optional behaviours with do-nothing defaults:
    :meth:`learning_rate_scale` (a learning-rate schedule of the method's own) and
    :meth:`state_dict` / :meth:`load_state_dict` (state beyond the generator, kept in the
    resume state).
    """

    generator: torch.Generator

    def sample(self) -> Batch:  # pragma: no cover
        raise NotImplementedError

    def learning_rate_scale(self, iteration: int) -> float | None:
        """Factor on the base method's initial learning rate at ``iteration``; None: no schedule."""
        return None

    def state_dict(self) -> dict | None:
        """State a resumed run needs beyond ``generator``; None: none."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`."""


class BatchSampler(Sampler):
    """Draws training batches on the device from a :class:`DeviceFeatureSet`."""

    def __init__(self, data: DeviceFeatureSet, batch_size: int, num_similar: int, max_seqlen: int, seed: int) -> None:
        if num_similar > 0 and len(data.pair_classes) == 0:
            raise DatasetError(
                "training set: no class has two videos, so same-class pairs cannot be drawn (set num_similar=0)"
            )
        self.data = data
        self.batch_size = batch_size
        self.num_similar = num_similar
        self.max_seqlen = max_seqlen
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(int(seed))

    def choose_videos(self) -> torch.Tensor:
        d, g, dev = self.data, self.generator, self.data.device
        picks = []
        if self.num_similar:
            cls = d.pair_classes[torch.randint(len(d.pair_classes), (self.num_similar,), generator=g, device=dev)]
            n = d.class_counts[cls]
            first = (torch.rand(self.num_similar, generator=g, device=dev) * n).long()
            second = (torch.rand(self.num_similar, generator=g, device=dev) * (n - 1)).long()
            second = second + (second >= first).long()  # distinct from first
            pair = torch.stack([d.class_members[cls, first], d.class_members[cls, second]], dim=1)
            picks.append(pair.reshape(-1))
        rest = self.batch_size - 2 * self.num_similar
        if rest > 0:
            picks.append(torch.randint(len(d), (rest,), generator=g, device=dev))
        return torch.cat(picks)

    def sample(self) -> Batch:
        d = self.data
        videos = self.choose_videos()
        idx = random_perturb_indices(d.lengths[videos], self.max_seqlen, self.generator)
        rows = (d.offsets[videos].unsqueeze(1) + idx).reshape(-1)
        features = d.features.index_select(0, rows).reshape(len(videos), self.max_seqlen, -1)
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=d.device)
        # Plug-ins look up text priors by id; resolved only when read, so a plain base
        # method never copies indices to the host (a GPU sync) in its training loop.
        video_ids = LazyVideoIds(videos, d.video_ids)
        return Batch(
            features=features, mask=mask, labels=d.labels[videos], video_ids=video_ids, extras={"video_index": videos}
        )
