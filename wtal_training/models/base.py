"""The contract between the training engine, base WTAL methods and plug-in modules.

A *base method* (CO2-Net, DELU, DDG-Net, UM, ...) maps a batch of snippet features to
per-snippet embeddings, a class activation sequence over C+1 classes (the last is
background) and a foreground attention in [0, 1], and knows its own loss.  The engine
never looks inside it.  A method whose own outputs are not of that form (UM: C-way CAS,
feature magnitudes) defines the mapping in its ``forward`` and says so in its docstring.

Test time is part of the method too, through hooks with the CO2-Net/DELU recipe as the
default: :meth:`BaseMethod.inference_length` (how many snippets the network sees per
video: all of them, or a uniform resampling), :meth:`BaseMethod.inference_videos_per_chunk`
(how many videos one forward takes), :attr:`BaseMethod.test_outputs` (which
``extras`` the post-processing needs) and the class methods
:meth:`BaseMethod.video_class_scores`, :meth:`BaseMethod.kept_classes`,
:meth:`BaseMethod.video_proposals` (the method's own proposals only) and
:meth:`BaseMethod.suppress` (non-maximum suppression), called by
:mod:`wtal_training.postprocess`, which adds the localization head's proposals itself.

The MLLM4WTAL branches (KSM, CSR, DPID, localization head) are *plug-ins*: they read a
:class:`BaseOutput` (embeddings and attention) and add losses; the training loop composes
them through a training objective (:mod:`wtal_training.objectives`), which owns the
optimizers, so a method with alternating phases and separate optimizers (the paper's eqs.
19-20) fits the same loop as a plain base method.

Shapes: B videos, T snippets, D feature dims (2048 = RGB 1024 + flow 1024), C classes.
``mask`` is (B, T) bool, True on real snippets (videos shorter than T are padded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from wtal_common.registry import Registry

from ..config import default_config
from ..proposals import Proposals, batched_soft_nms, select_classes
from .oic import oic_class_scores, oic_proposals


@dataclass
class Batch:
    """One training batch, already on the training device."""

    features: torch.Tensor  # (B, T, D) float32
    mask: torch.Tensor  # (B, T) bool, True on real snippets
    labels: torch.Tensor  # (B, C) float multi-hot video-level labels
    video_ids: Sequence[str]  # may resolve lazily from a device index (see sampler.LazyVideoIds)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. text-prior token ids


@dataclass
class BaseOutput:
    embeddings: torch.Tensor  # (B, T, E) fused snippet embeddings (E = 2048 for CO2/DELU)
    cas: torch.Tensor  # (B, T, C+1) class activation logits; last column = background
    attention: torch.Tensor  # (B, T) foreground attention in [0, 1]
    modality_attention: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. rgb/flow (B, T)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class BaseMethod(nn.Module):
    """A registered base WTAL method. Subclasses set ``name`` and implement both methods."""

    name: str = "base"
    # Its hyperparameters (``self.hp``): its own config section (named after it: every field),
    # plus these fields of the shared sections ("section.field"); the values live in
    # wtal_training/configs/defaults.yaml (:meth:`hyperparameters_of`).
    shared_settings: tuple[str, ...] = ()

    def __init__(self, feature_dim: int, num_classes: int, **hyperparameters: Any) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    @classmethod
    def hyperparameters_of(cls, config: Any) -> dict[str, Any]:
        """What the method reads from a run's config: each of :attr:`shared_settings` (by its
        field name) and every field of its own section."""
        values = {
            path.split(".")[1]: config.sections[path.split(".")[0]][path.split(".")[1]] for path in cls.shared_settings
        }
        values.update(config.own)
        return values

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        """This method's hyperparameters as defaults.yaml sets them for its default data-set
        family; a model built without a config (tests, benchmarks) takes these, so no value
        is repeated in the model code."""
        return cls.hyperparameters_of(default_config(method=cls.name))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> BaseOutput:  # pragma: no cover
        raise NotImplementedError

    # -- test-time hooks (defaults: CO2-Net/DELU) ------------------------------------------
    # ``extras`` keys (B, T, ...) kept per video by the engine's inference, for the hooks below.
    test_outputs: tuple[str, ...] = ()

    def inference_length(self, lengths: torch.Tensor) -> torch.Tensor:
        """Snippets the network sees per video at test time, from each video's length (B,).

        The engine feeds snippet ``(i * length) // n`` as input i (a uniform resampling;
        the identity when n == length).  Default: every snippet.
        """
        return lengths

    def inference_videos_per_chunk(self, longest: int, max_snippets: int) -> int:
        """How many videos (padded to ``longest`` snippets) one inference forward takes.

        Default: as many as fit ``max_snippets`` padded snippets, the bound for methods whose
        memory grows linearly with length.  A method with T x T intermediates bounds the
        pairs instead (DDG-Net)."""
        return snippet_bounded_videos(longest, max_snippets)

    # Proposals of one video (``output``: its inference outputs, ``cas``, ``attention``, the
    # ``test_outputs`` extras, and ``video_length`` when :meth:`inference_length` resampled it).
    # Class methods: post-processing looks the method up by name (``config.method``).
    # Defaults: the CO2-Net/DELU recipe (:mod:`.oic`).
    @classmethod
    def video_class_scores(cls, output: Mapping[str, np.ndarray], config: Any) -> np.ndarray:
        """(C,) video-level class scores: what decides the kept classes and ranks the
        localization head's proposals."""
        return oic_class_scores(output, config)

    @classmethod
    def kept_classes(cls, class_scores: np.ndarray, config: Any) -> np.ndarray:
        """Class indices the video is taken to show (proposals are made for these)."""
        return select_classes(class_scores, config.test.class_threshold)

    @classmethod
    def video_proposals(
        cls, output: Mapping[str, np.ndarray], config: Any, classes: np.ndarray, class_scores: np.ndarray
    ) -> Proposals:
        """The method's own proposals for ``classes`` (the kept ones at test time, a training
        video's labels for the localization head's pseudo-labels), in snippets of the
        original video, before suppression; never the head's (:mod:`wtal_training.postprocess`
        adds those)."""
        return oic_proposals(output, config, classes, class_scores)

    @classmethod
    def prepare_head_proposals(cls, proposals: Proposals, config: Any) -> Proposals:
        """The localization head's proposals before they join this method's: unchanged by
        default (:meth:`suppress` then treats both alike)."""
        return proposals

    @classmethod
    def suppress(cls, groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], config: Any) -> list[np.ndarray]:
        """Scores after non-maximum suppression for each (start, end, score) group of one
        (video, class); a non-finite score removes the proposal.  Default: Gaussian soft-NMS."""
        return batched_soft_nms(groups, sigma=config.test.nms_sigma)

    # -- training hooks (defaults: the engine's batch sampler and a plain Adam) ------------
    def training_sampler(self, data: Any, config: Any, seed: int) -> Any:
        """The method's own sampler of training batches, or None for the engine's
        :class:`~wtal_training.sampler.BatchSampler`.  A sampler has ``sample() -> Batch`` and
        a ``generator`` (saved for resuming); optionally ``learning_rate_scale(iteration)``
        (the engine multiplies the learning rate of every optimizer group holding only this
        method's parameters by it, before each iteration) and ``state_dict`` /
        ``load_state_dict`` (kept in the resume state).  Zhou et al. 2023: epochs of whole
        videos, snapshots and their pseudo-labels (:mod:`.zhou2023_training`)."""
        return None

    def optimizer_options(self) -> dict[str, Any]:
        """Extra ``torch.optim.Adam`` arguments of the plain base objective (e.g. ``betas``)."""
        return {}

    def loss(
        self, output: BaseOutput, batch: Batch, iteration: int
    ) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        """Total loss and a dict of named scalar parts for logging."""
        raise NotImplementedError


BASE_METHODS: Registry[type[BaseMethod]] = Registry("base method", field="config 'method'")


def inference_snippet_budget(device: torch.device) -> int:
    """Padded snippets per inference forward when the caller names no bound: what fits
    comfortably in a GPU's memory, or keeps a CPU forward's working set in cache-sized steps."""
    return 262_144 if device.type == "cuda" else 16_384


def snippet_bounded_videos(longest: int, max_snippets: int) -> int:
    """Videos padded to ``longest`` snippets that fit ``max_snippets`` (at least one)."""
    return max(1, max_snippets // max(longest, 1))


def base_method_of(model: nn.Module) -> BaseMethod | None:
    """The base method inside an inference model (itself, or a wrapper's ``base``)."""
    if isinstance(model, BaseMethod):
        return model
    inner = getattr(model, "base", None)
    return inner if isinstance(inner, BaseMethod) else None


def register_base_method(name: str) -> Callable[[type[BaseMethod]], type[BaseMethod]]:
    """Class decorator: make a base method constructible by name from config (``BASE_METHODS``)."""

    def decorator(cls: type[BaseMethod]) -> type[BaseMethod]:
        BASE_METHODS.register(name)(cls)
        cls.name = name
        return cls

    return decorator
