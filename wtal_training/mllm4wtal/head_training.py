"""How the localization head learns (paper §3.3, eq. 18; the loss in :mod:`.loc_head`).

Three decisions, each against a failure measured on generated THUMOS14-shaped data
(docs/method.md, "Localization head"):

* **Pseudo-labels from the base method's own proposals** on whole training videos
  (:mod:`.pseudo_labels`), refreshed every ``loc_refresh_every`` iterations from the
  eval-mode base, instead of a fixed threshold on the attention of each batch.
* **One temporal scale.**  The base method trains on videos resampled to ``max_seqlen``
  snippets (random-perturb sampling compresses long videos up to 14x and stretches short
  ones); at test time the head runs on native-length features and its offsets are decoded
  as native snippets.  So the head trains on contiguous native windows of
  ``loc_window`` snippets (ActionFormer's recipe), drawn by a generator of its own, with
  targets in native snippets.
* **What the head sees.**  Its input is the base method's embeddings from an eval-mode
  (dropout-free) pass without gradient: the same tensor it reads at inference.  Its loss
  therefore trains the head alone and cannot pull the base away from what KSM, CSR and
  the distillation give it; nothing runs before ``loc_warmup`` x iterations (the base has
  not learned yet, so its proposals would be noise), then the weight mu1 ramps up linearly
  over ``loc_ramp`` x iterations.

The head's window generator and the current targets are part of the objective's resume
state, so a resumed run draws and trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..inference import infer
from ..models.base import BaseMethod
from .loc_head import LocalizationHead, localization_loss
from .pseudo_labels import PackedTargets, PseudoLabelRule, pack_targets, pseudo_instances, pseudo_label_quality

log = logging.getLogger("wtal_training")


class HeadTraining:
    """Pseudo-labels, windows and the loss schedule of the localization head."""

    def __init__(
        self,
        head: LocalizationHead,
        base: BaseMethod,
        train_config: Any,
        data: Any,
        gt: Mapping[str, Any],
        cfg: Mapping[str, Any],
        seed: int,
    ) -> None:
        self.head, self.base, self.config, self.data, self.gt = head, base, train_config, data, gt
        self.method = type(base)  # its proposal and suppression hooks (models/base.py)
        self.iterations = int(train_config.optimiser.iterations)
        self.mu1 = float(cfg["mu1"])
        self.warmup = int(math.ceil(float(cfg["loc_warmup"]) * self.iterations))
        self.ramp = max(1, int(math.ceil(float(cfg["loc_ramp"]) * self.iterations)))
        self.refresh_every = int(cfg["loc_refresh_every"])
        self.window = int(cfg["loc_window"] or train_config.data.max_seqlen)
        self.windows_per_batch = int(cfg["loc_batch_size"] or train_config.data.batch_size)
        self.k_divisor = int(cfg["k_divisor"])
        self.rule = PseudoLabelRule(
            float(cfg["loc_min_relative_score"]), float(cfg["loc_max_overlap"]), float(cfg["loc_max_share"])
        )
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(int(seed) * 1_000_003 + 17)  # its own stream: the base's batches are untouched
        self.targets: PackedTargets | None = None
        self.refreshed_at = 0
        self.quality: dict[str, float] = {}
        self._lengths = data.lengths.cpu().numpy()

    # -- schedule ------------------------------------------------------------------------
    def weight(self, iteration: int) -> float:
        """mu1 at ``iteration``: 0 up to the warm-up, then a linear ramp to mu1."""
        if iteration <= self.warmup:
            return 0.0
        return self.mu1 * min(1.0, (iteration - self.warmup) / self.ramp)

    def due(self, iteration: int) -> bool:
        """A refresh is due at the first iteration with a loss and every ``refresh_every`` after."""
        if iteration <= self.warmup:
            return False
        return self.targets is None or (iteration - self.warmup - 1) % self.refresh_every == 0

    # -- pseudo-labels -------------------------------------------------------------------
    @torch.no_grad()
    def refresh(self) -> None:
        """Eval-mode base on every training video -> its own proposals -> packed targets."""
        outputs = infer(self.base, self.data)
        labels = self.data.labels.cpu().numpy()
        per_video = {vid: np.flatnonzero(labels[i] > 0) for i, vid in enumerate(self.data.video_ids)}
        instances = pseudo_instances(self.method, outputs, per_video, self.config, self.rule)
        self.targets = pack_targets(
            instances, self.data.video_ids, self._lengths, self.base.num_classes, self.data.device
        )
        self.quality = pseudo_label_quality(self.targets, self.gt, self.data.video_ids, self._lengths)

    # -- one loss ------------------------------------------------------------------------
    def window_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(videos (B,), rows (B, W) into the packed training set, mask (B, W)): contiguous
        native windows, start uniform over the video (whole video when it is shorter)."""
        d, g, dev = self.data, self.generator, self.data.device
        videos = torch.randint(len(d), (self.windows_per_batch,), generator=g, device=dev)
        lengths = d.lengths[videos]
        room = (lengths - self.window).clamp(min=0)
        start = (torch.rand(len(videos), generator=g, device=dev) * (room + 1).to(torch.float32)).long()
        start = torch.minimum(start, room)
        steps = torch.arange(self.window, device=dev).unsqueeze(0)
        mask = steps < (lengths - start).unsqueeze(1)
        rows = d.offsets[videos].unsqueeze(1) + torch.minimum(start.unsqueeze(1) + steps, lengths.unsqueeze(1) - 1)
        return videos, rows, mask

    def loss(self, iteration: int) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]] | None:
        """mu1(iteration) * L_loc on one batch of windows, or None before the warm-up ends."""
        weight = self.weight(iteration)
        if weight == 0.0:
            return None
        if self.due(iteration):
            self.refresh()
            self.refreshed_at = iteration
        videos, rows, mask = self.window_batch()
        flat = rows.reshape(-1)
        features = self.data.features.index_select(0, flat).reshape(*rows.shape, -1)
        features = features * mask.unsqueeze(-1).to(features.dtype)
        was_training = self.base.training
        self.base.eval()
        with torch.no_grad():
            embeddings = self.base(features, mask).embeddings
        self.base.train(was_training)
        logits, offsets = self.head(embeddings, mask)
        t = self.targets
        target_classes = t.classes.index_select(0, flat).reshape(*rows.shape, -1)
        target_offsets = t.offsets.index_select(0, flat).reshape(*rows.shape, 2)
        positive = t.positive.index_select(0, flat).reshape(rows.shape) & mask
        target_classes = target_classes * mask.unsqueeze(-1).to(target_classes.dtype)
        video_labels = self.data.labels[videos]
        l_loc, parts = localization_loss(
            logits, offsets, target_classes, target_offsets, positive, mask, video_labels, self.k_divisor
        )
        logs: dict[str, torch.Tensor | float] = {k: v for k, v in parts.items()}
        logs.update(self.quality)
        logs["loc_weight"] = weight
        return weight * l_loc, logs

    # -- resume --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        t = self.targets
        return {
            "generator": self.generator.get_state(),
            "refreshed_at": self.refreshed_at,
            "quality": dict(self.quality),
            "targets": None
            if t is None
            else {"classes": t.classes.cpu(), "offsets": t.offsets.cpu(), "positive": t.positive.cpu()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.refreshed_at = int(state["refreshed_at"])
        self.quality = dict(state["quality"])
        t = state["targets"]
        dev = self.data.device
        self.targets = (
            None if t is None else PackedTargets(t["classes"].to(dev), t["offsets"].to(dev), t["positive"].to(dev))
        )
