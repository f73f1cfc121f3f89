"""Zhou et al. 2023's stateful training: epochs of whole videos, the memory bank and the
snapshots whose Gaussian-fused pseudo-labels the model distils (``method.py``'s
``train``), as the method's own sampler (:meth:`~.base.BaseMethod.training_sampler`).

Batches: each epoch is a fresh permutation of the training videos cut into batches of
``batch_size`` whole videos, zero-padded to the longest with a mask (the last batch of an
epoch may be smaller; with ``train_max_snippets`` > 0, longer videos are cut to that many
snippets, :func:`padded_batch`); the engine's one optimizer step per batch on the sum of the
videos' losses is the public code's one backward pass per video and a step every 10.
Epochs are 0-based as the public loop; ``iterations_per_epoch = ceil(videos / batch_size)``.

Events, at the first batch of an epoch e (the public order):

* e = ``warmup_epochs`` + 1: the memory bank is filled from every training video, the model
  in eval mode (``ft_eval`` at the end of epoch ``warmup_epochs``); from then on the loss
  uses and updates it.
* e in ``snapshot_epochs``: the memory bank is emptied; a copy of the current model (in
  train mode unless ``snapshot_dropout`` is false: the public ``dist_model`` is never put in
  eval mode) scores every training video, and :func:`.zhou2023_pseudo.video_pseudo_labels`
  turns its proposals into per-snippet labels with that snapshot's temperature.

Each batch carries its stage in ``extras["zhou_stage"]`` (memory in use, the snippet
pseudo-label weight of the stage, the distillation weight
``min(distill_weight x distill_growth^(e - first snapshot epoch), distill_max)``) and, after
the first snapshot epoch, ``extras["pseudo_labels"]``: the latest snapshot's labels, or
after ``delta_epochs[i]`` the delta ``delta_scales[i] x (latest - previous)``.

The learning rate follows the epochs too (:meth:`Zhou2023Training.learning_rate_scale`,
``Step_change_lr``).  The sampler's position, permutation and pseudo-labels go into the
resume state (:meth:`state_dict`); the memory bank is a buffer of the model.
"""

from __future__ import annotations

import bisect
import copy
import logging
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..sampler import LazyVideoIds, Sampler, random_perturb_indices
from .base import Batch, inference_snippet_budget
from .zhou2023_pseudo import video_pseudo_labels

log = logging.getLogger("wtal_training")


def padded_batch(
    data: Any, videos: torch.Tensor, max_snippets: int = 0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features (B, T_max, D), mask (B, T_max) and packed row indices (B, T_max) of whole videos.

    With ``max_snippets`` > 0 (and a ``generator``), a video longer than that is cut to
    ``max_snippets`` snippets by the project's random-perturb sampling (one random snippet
    per equal bin, in order: :func:`..sampler.random_perturb_indices`), as the other base
    methods' samplers do; shorter videos stay whole.  ``rows`` then index the kept snippets,
    so per-snippet pseudo-labels follow them.  0 is the public code (whole videos)."""
    lengths = data.lengths[videos]
    kept = lengths.clamp(max=max_snippets) if max_snippets > 0 else lengths
    t_max = int(kept.max())
    steps = torch.arange(t_max, device=data.device).unsqueeze(0)
    mask = steps < kept.unsqueeze(1)
    positions = torch.minimum(steps, kept.unsqueeze(1) - 1).expand(len(videos), t_max).clone()
    long = lengths > kept
    if bool(long.any()):
        if generator is None:
            raise ValueError("padded_batch: cutting videos to max_snippets needs a generator")
        positions[long] = random_perturb_indices(lengths[long], t_max, generator)
    rows = data.offsets[videos].unsqueeze(1) + positions
    features = data.features.index_select(0, rows.reshape(-1)).reshape(len(videos), t_max, -1)
    return features * mask.unsqueeze(-1).to(features.dtype), mask, rows


def all_videos(data: Any, max_snippets: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every video of ``data`` once, length-sorted into padded chunks of at most ``max_snippets``."""
    order = torch.argsort(data.lengths, descending=True, stable=True)
    i = 0
    while i < len(order):
        count = max(1, max_snippets // max(int(data.lengths[order[i]]), 1))
        videos = order[i : i + count]
        i += len(videos)
        features, mask, _ = padded_batch(data, videos)
        yield videos, features, mask


class Zhou2023Training(Sampler):
    """The method's sampler and training state (see the module docstring)."""

    def __init__(self, model: Any, data: Any, batch_size: int, seed: int) -> None:
        self.model = model
        self.data = data
        self.batch_size = int(batch_size)
        self.iterations_per_epoch = math.ceil(len(data) / self.batch_size)
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(int(seed))
        self.drawn = 0  # batches drawn so far
        self.order = torch.zeros(0, dtype=torch.long, device=data.device)
        self.memory_filled = False
        self.snapshots_taken = 0
        self.latest: torch.Tensor | None = None  # packed (N snippets, C+1), rows as data.features
        self.previous: torch.Tensor | None = None
        self.max_snippets = inference_snippet_budget(data.device)

    @property
    def hp(self) -> dict[str, Any]:
        return self.model.hp

    def epoch_of(self, iteration: int) -> int:
        """0-based epoch of the engine's (1-based) iteration."""
        return (int(iteration) - 1) // self.iterations_per_epoch

    # -- schedule ---------------------------------------------------------------------------
    def learning_rate_scale(self, iteration: int) -> float:
        epoch = self.epoch_of(iteration)
        steps = self.hp["lr_step_epochs"]
        return float(self.hp["lr_step_factors"][bisect.bisect_left(steps, epoch + 1)])

    def stage(self, epoch: int) -> dict[str, Any]:
        hp = self.hp
        first_snapshot = hp["snapshot_epochs"][0] if hp["snapshot_epochs"] else None
        if epoch <= hp["warmup_epochs"]:
            spl = hp["spl_weights"][0]
        elif first_snapshot is None or epoch <= first_snapshot:
            spl = hp["spl_weights"][1]
        else:
            spl = hp["spl_weights"][2]
        distill = 0.0
        if first_snapshot is not None and epoch > first_snapshot and self.latest is not None:
            distill = min(hp["distill_weight"] * hp["distill_growth"] ** (epoch - first_snapshot), hp["distill_max"])
        return {
            "epoch": epoch,
            "use_memory": self.memory_filled and epoch > hp["warmup_epochs"],
            "spl_weight": float(spl),
            "distill_weight": float(distill),
        }

    def pseudo_target(self, epoch: int) -> torch.Tensor | None:
        """Packed distillation targets for this epoch, or None before they start."""
        if self.stage(epoch)["distill_weight"] <= 0 or self.latest is None:
            return None
        i = bisect.bisect_left(self.hp["delta_epochs"], epoch) - 1  # delta after delta_epochs[i]
        if i < 0 or self.previous is None:
            return self.latest
        return float(self.hp["delta_scales"][i]) * (self.latest - self.previous)

    # -- events -------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        self.order = torch.randperm(len(self.data), generator=self.generator, device=self.data.device)
        hp = self.hp
        if epoch == hp["warmup_epochs"] + 1 and not self.memory_filled:
            self.fill_memory()
        if epoch in hp["snapshot_epochs"]:
            index = list(hp["snapshot_epochs"]).index(epoch)
            self.model.empty_memory()
            self.take_snapshot(float(hp["snapshot_temperatures"][index]), epoch)

    @torch.no_grad()
    def fill_memory(self) -> None:
        model, was_training = self.model, self.model.training
        model.eval()
        for videos, features, mask in all_videos(self.data, self.max_snippets):
            out = model(features, mask)
            model.update_memory(out.extras["centres"], out.extras["centre_scores"], self.data.labels[videos])
        model.train(was_training)
        self.memory_filled = True
        log.info("zhou2023: memory bank filled from %d training videos", len(self.data))

    @torch.no_grad()
    def take_snapshot(self, temperature: float, epoch: int) -> None:
        snapshot = copy.deepcopy(self.model)
        snapshot.train(bool(self.hp["snapshot_dropout"]))
        mix = float(self.hp["pseudo_mix"])
        jobs = []
        for videos, features, mask in all_videos(self.data, self.max_snippets):
            out = snapshot(features, mask)
            ex = out.extras
            probs = mix * ex["logits_o"].softmax(-1) + (1 - mix) * ex["logits_m"].softmax(-1)
            frame = (probs * out.attention.unsqueeze(-1)).float().cpu().numpy()
            video = ex["video_scores"][:, 0].float().cpu().numpy()
            lengths = mask.sum(1).tolist()
            jobs += [(int(v), video[b], frame[b, : lengths[b]]) for b, v in enumerate(videos.tolist())]
        del snapshot
        threshold, thresholds = float(self.hp["class_threshold"]), list(self.hp["cas_thresholds"])

        def solve(job: tuple[int, np.ndarray, np.ndarray]) -> tuple[int, np.ndarray, int]:
            v, video, frame = job
            labels, failed = video_pseudo_labels(video, frame, threshold, thresholds, temperature)
            return v, labels, failed

        packed = torch.zeros(self.data.features.shape[0], self.model.num_classes + 1)
        failures = 0
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # each LP is a CBC process
            for v, labels, failed in pool.map(solve, jobs):
                off, n = int(self.data.offsets[v]), int(self.data.lengths[v])
                packed[off : off + n] = torch.from_numpy(labels).float()
                failures += failed
        self.previous, self.latest = self.latest, packed.to(self.data.device)
        self.snapshots_taken += 1
        log.info(
            "zhou2023: snapshot %d at epoch %d: pseudo-labels for %d videos (temperature %g, %d infeasible class(es))",
            self.snapshots_taken,
            epoch,
            len(jobs),
            temperature,
            failures,
        )

    # -- the sampler ----------------------------------------------------------------------------
    def sample(self) -> Batch:
        epoch, position = divmod(self.drawn, self.iterations_per_epoch)
        if position == 0:
            self.begin_epoch(epoch)
        self.drawn += 1
        videos = self.order[position * self.batch_size : (position + 1) * self.batch_size]
        features, mask, rows = padded_batch(
            self.data, videos, int(self.hp.get("train_max_snippets") or 0), self.generator
        )
        extras: dict[str, Any] = {"video_index": videos, "zhou_stage": self.stage(epoch)}
        target = self.pseudo_target(epoch)
        if target is not None:
            extras["pseudo_labels"] = target.index_select(0, rows.reshape(-1)).reshape(*rows.shape, -1)
        return Batch(
            features=features,
            mask=mask,
            labels=self.data.labels[videos],
            video_ids=LazyVideoIds(videos, self.data.video_ids),
            extras=extras,
        )

    # -- resume -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        cpu = lambda t: None if t is None else t.detach().cpu()  # noqa: E731
        return {
            "drawn": self.drawn,
            "order": cpu(self.order),
            "memory_filled": self.memory_filled,
            "snapshots_taken": self.snapshots_taken,
            "latest": cpu(self.latest),
            "previous": cpu(self.previous),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.data.device
        to = lambda t: None if t is None else t.to(device)  # noqa: E731
        self.drawn = int(state["drawn"])
        self.order = to(state["order"])
        self.memory_filled = bool(state["memory_filled"])
        self.snapshots_taken = int(state["snapshots_taken"])
        self.latest, self.previous = to(state["latest"]), to(state["previous"])
