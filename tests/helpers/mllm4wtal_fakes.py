"""Test doubles for the MLLM4WTAL tests: a tiny base method and a fake TextPriors.

The base method has the same interface as CO2-Net/DELU (embeddings, CAS over C+1,
attention in [0, 1], a MIL loss) at toy sizes; the fake text priors have the attributes
of ``prior_generation.text_priors.TextPriors``.  Neither is a real model or data set.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wtal_training.mllm4wtal.common import masked_topk_mean
from wtal_training.models.base import BaseMethod, BaseOutput, Batch


class TinyBase(BaseMethod):
    name = "tiny"

    def __init__(self, feature_dim: int, num_classes: int, embedding_dim: int = 48) -> None:
        super().__init__(feature_dim, num_classes)
        self.embed = nn.Sequential(nn.Conv1d(feature_dim, embedding_dim, 3, padding=1), nn.ReLU())
        self.attn = nn.Conv1d(embedding_dim, 1, 1)
        self.classifier = nn.Conv1d(embedding_dim, num_classes + 1, 1)

    def forward(self, features, mask=None):
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool)
        emb = self.embed(features.transpose(1, 2))
        att = torch.sigmoid(self.attn(emb)).squeeze(1) * mask.float()
        cas = self.classifier(emb).transpose(1, 2)
        return BaseOutput(embeddings=emb.transpose(1, 2), cas=cas, attention=att)

    def loss(self, output: BaseOutput, batch: Batch, iteration: int):
        y = torch.cat([batch.labels, torch.ones_like(batch.labels[:, :1])], 1)
        y = y / y.sum(1, keepdim=True)
        s = masked_topk_mean(output.cas, batch.mask, 8)
        s_hat = masked_topk_mean(output.cas * output.attention.unsqueeze(-1), batch.mask, 8)
        y_hat = torch.cat([batch.labels, torch.zeros_like(batch.labels[:, :1])], 1)
        y_hat = y_hat / y_hat.sum(1, keepdim=True).clamp(min=1e-6)
        loss = -(y * F.log_softmax(s, 1)).sum(1).mean() - (y_hat * F.log_softmax(s_hat, 1)).sum(1).mean()
        return loss, {"mil": float(loss.detach())}


@dataclass
class CompleteItem:
    input_ids: np.ndarray
    target_ids: np.ndarray
    mask_positions: np.ndarray


class FakeTextPriors:
    """Vocabulary: 4 specials, then per class 5 words; sentences mix class words and fillers."""

    def __init__(self, classes=("jump", "swim", "throw"), dim: int = 10, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.classes = list(classes)
        self.vocab = ["<pad>", "<unk>", "<start>", "<mask>", "the", "a", "person", "video"]
        self._class_words = {}
        for c in self.classes:
            words = [f"{c}{i}" for i in range(5)]
            self._class_words[c] = [len(self.vocab) + i for i in range(5)]
            self.vocab += words
        self.word_vectors = rng.standard_normal((len(self.vocab), dim)).astype(np.float32)
        self.word_vectors[0] = 0
        self.pad_id, self.unk_id, self.start_id, self.mask_id = 0, 1, 2, 3
        self._rng = rng

    def _sentence(self, cls: str, video_id: str, n: int) -> np.ndarray:
        r = np.random.default_rng(zlib.crc32(f"{cls}|{video_id}|{n}".encode()))
        words = self._class_words[cls]
        return np.array([4, 6] + list(r.choice(words, 4)) + [5, 7], dtype=np.int64)

    def key_tokens(self, video_id: str, cls: str):
        return [self._sentence(cls, video_id, 0)[:5]]

    def key_bank(self, cls: str):
        return [self._sentence(cls, f"bank{i}", 0)[:5] for i in range(3)]

    def class_name_tokens(self, cls: str):
        return np.array(self._class_words[cls][:1], dtype=np.int64)

    def _mask(self, target: np.ndarray) -> CompleteItem:
        positions = np.arange(2, len(target), 3)  # a third of the words
        inputs = target.copy()
        inputs[positions] = self.mask_id
        return CompleteItem(inputs, target, positions)

    def complete(self, video_id: str, cls: str):
        return [self._mask(self._sentence(cls, video_id, n)) for n in (1, 2)]

    def template_complete(self, cls: str):
        return self._mask(np.array([5, 7, 4] + self._class_words[cls][:1], dtype=np.int64))


def toy_batches(
    num_classes: int = 3, feature_dim: int = 16, length: int = 24, batch: int = 6, n: int = 4, seed: int = 0
):
    """Generated toy videos: class c adds a fixed direction to the features inside one segment."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(num_classes, feature_dim, generator=g) * 2.0
    out = []
    for i in range(n):
        feats = torch.randn(batch, length, feature_dim, generator=g) * 0.5
        labels = torch.zeros(batch, num_classes)
        mask = torch.ones(batch, length, dtype=torch.bool)
        for b in range(batch):
            c = int(torch.randint(num_classes, (1,), generator=g))
            start = int(torch.randint(0, length - 8, (1,), generator=g))
            feats[b, start : start + 6] += directions[c]
            labels[b, c] = 1
        mask[0, length - 5 :] = False  # one shorter video
        feats[0, length - 5 :] = 0
        out.append(Batch(features=feats, mask=mask, labels=labels, video_ids=[f"v{i}_{b}" for b in range(batch)]))
    return out


class _MemoryStore:
    """The part of ``wtal_data.canonical.FeatureStore`` a ``DeviceFeatureSet`` reads."""

    def __init__(self, features: dict[str, np.ndarray]) -> None:
        self._features = features
        self.index = {v: [0, len(x)] for v, x in features.items()}
        self.feature_dim = next(iter(features.values())).shape[1]

    def __getitem__(self, video_id: str) -> np.ndarray:
        return self._features[video_id]


@dataclass
class ToyTrainSet:
    """What the MLLM4WTAL objective reads of the engine's LoadedData: ``train`` and ``gt``."""

    train: object
    gt: dict


def toy_train_set(
    classes=("jump", "swim", "throw"),
    feature_dim: int = 16,
    lengths=(30, 24, 40, 28, 36, 24, 50, 26),
    seed: int = 0,
    snippet_seconds: float = 0.64,
) -> ToyTrainSet:
    """Generated training videos (not a data set): each shows one class, whose fixed feature
    direction is added inside one annotated segment; the ground truth carries the segments
    (diagnostics only) and the video labels."""
    from wtal_training.sampler import DeviceFeatureSet

    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((len(classes), feature_dim)).astype(np.float32) * 2.0
    features, database = {}, {}
    for i, n in enumerate(lengths):
        vid = f"train{i:02d}"
        c = i % len(classes)
        x = rng.standard_normal((n, feature_dim)).astype(np.float32) * 0.5
        start = int(rng.integers(2, n - 10))
        x[start : start + 6] += directions[c]
        features[vid] = x
        segment = [start * snippet_seconds, (start + 6) * snippet_seconds]
        database[vid] = {
            "subset": "train",
            "duration": n * snippet_seconds,
            "labels": [classes[c]],
            "annotations": [{"label": classes[c], "segment": segment}],
        }
    gt = {"classes": list(classes), "snippet_seconds": snippet_seconds, "database": database}
    train = DeviceFeatureSet(_MemoryStore(features), gt, sorted(features), "cpu")
    return ToyTrainSet(train, gt)
