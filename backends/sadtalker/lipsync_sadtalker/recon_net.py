"""3DMM coefficient regressor (Deep3DFaceRecon's ReconNet as SadTalker ships it).

A torchvision-layout ResNet-50 v1.5 (stride on the 3x3 conv) without its classifier, then seven 1x1 conv
heads on the pooled 2048 features whose outputs concatenate to 257 coefficients:
id 80 | exp 64 | tex 80 | angle 3 (radians) | gamma 27 (SH lighting) | trans 3.
Input: aligned 224x224 RGB in [0, 1], no mean/std normalisation.

State-dict keys equal the official ones (``backbone.*``, ``final_layers.0-6.*``); in the released
``SadTalker_V0.0.2_*.safetensors`` they carry the prefix ``face_3drecon.``, in ``epoch_20.pth`` they sit
under ``["net_recon"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from .alignment import ALIGNED_SIZE, TransParams

__all__ = [
    "COEFF_SLICES",
    "NUM_COEFFS",
    "OLD_CHECKPOINT_KEY",
    "SAFETENSORS_PREFIX",
    "ReconNet",
    "coefficients_73",
    "to_input",
]

SAFETENSORS_PREFIX: Final = "face_3drecon."
OLD_CHECKPOINT_KEY: Final = "net_recon"  # epoch_20.pth: checkpoint["net_recon"][key]

HEAD_SIZES: Final = (("id", 80), ("exp", 64), ("tex", 80), ("angle", 3), ("gamma", 27), ("trans", 3))
# The seven heads: the last two produce the 2 + 1 translation outputs separately.
_HEAD_CHANNELS: Final = (80, 64, 80, 3, 27, 2, 1)
NUM_COEFFS: Final = sum(_HEAD_CHANNELS)


def _slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, size in HEAD_SIZES:
        out[name] = slice(start, start + size)
        start += size
    return out


COEFF_SLICES: Final[dict[str, slice]] = _slices()

_RESNET50_BLOCKS: Final = (3, 4, 6, 3)
_STAGE_WIDTHS: Final = (64, 128, 256, 512)
_EXPANSION: Final = 4
FEATURES: Final = _STAGE_WIDTHS[-1] * _EXPANSION  # 2048


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand; BN after each; identity or projected shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * _EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNet50Features(nn.Module):
    """ResNet-50 trunk up to global average pooling: (B, 3, H, W) -> (B, 2048, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, (blocks, width) in enumerate(zip(_RESNET50_BLOCKS, _STAGE_WIDTHS, strict=True)):
            first_stride = 1 if index == 0 else 2
            stage = []
            for block in range(blocks):
                stage.append(Bottleneck(channels, width, first_stride if block == 0 else 1))
                channels = width * _EXPANSION
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
        return self.avgpool(x)


class ReconNet(nn.Module):
    """Aligned face (B, 3, 224, 224) in [0, 1] -> (B, 257) 3DMM coefficients (see ``COEFF_SLICES``)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet50Features()
        self.final_layers = nn.ModuleList(nn.Conv2d(FEATURES, n, 1) for n in _HEAD_CHANNELS)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, ALIGNED_SIZE, ALIGNED_SIZE):
            raise ValueError(
                f"expected aligned faces (B, 3, {ALIGNED_SIZE}, {ALIGNED_SIZE}), got {tuple(images.shape)}"
            )
        features = self.backbone(images)
        return torch.cat([head(features) for head in self.final_layers], dim=1).flatten(1)


def to_input(aligned_rgb: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(224, 224, 3) or (B, 224, 224, 3) uint8 aligned faces -> (B, 3, 224, 224) float32 in [0, 1]."""
    batch = aligned_rgb[None] if aligned_rgb.ndim == 3 else aligned_rgb
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"expected (B, H, W, 3) uint8 images, got {aligned_rgb.dtype} {aligned_rgb.shape}")
    pixels = torch.tensor(batch, device=device)
    return pixels.permute(0, 3, 1, 2).float() / 255


def coefficients_73(
    coeffs257: np.ndarray | Tensor, trans_params: TransParams | Sequence[TransParams]
) -> np.ndarray:
    """SadTalker's saved ``coeff_3dmm`` rows: exp (64), angle (3), trans (3), then s, tx, ty.

    Args:
        coeffs257: (N, 257) or (257,) recon-net output.
        trans_params: the alignment of each row (one value for all rows, or one per row).

    Returns:
        (N, 73) float32.
    """
    if isinstance(coeffs257, Tensor):
        coeffs257 = coeffs257.detach().cpu().numpy()
    coeffs = np.asarray(coeffs257, dtype=np.float32).reshape(-1, NUM_COEFFS)
    params = [trans_params] * len(coeffs) if isinstance(trans_params, TransParams) else list(trans_params)
    if len(params) != len(coeffs):
        raise ValueError(f"{len(coeffs)} coefficient rows but {len(params)} alignments")
    crop = np.array([p.as_array()[2:] for p in params], dtype=np.float32).reshape(-1, 3)
    parts = [coeffs[:, COEFF_SLICES[name]] for name in ("exp", "angle", "trans")]
    return np.concatenate([*parts, crop], axis=1)
