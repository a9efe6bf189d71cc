"""Convolution blocks and coordinate grids shared by the SadTalker face-render networks.

The face renderer (``OcclusionAwareSPADEGenerator`` with its dense-motion network) and the keypoint
detector are built from the same facevid2vid-style pieces: 2-D and 3-D "conv + BatchNorm + ReLU"
blocks that keep, halve or double the spatial size, a pre-activation 3-D residual block and a 3-D
hourglass. Attribute names reproduce the official state-dict keys (``<block>.conv.*``,
``<block>.norm.*``, ``<block>.conv1.*`` ...), so official checkpoints load with ``strict=True``.
BatchNorm layers are used with their running statistics (inference only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DownBlock2d",
    "DownBlock3d",
    "Hourglass3d",
    "HourglassDecoder3d",
    "HourglassEncoder3d",
    "ResBlock3d",
    "SameBlock2d",
    "UpBlock3d",
    "coordinate_grid_3d",
    "gaussian_heatmaps",
]

LEAKY_SLOPE = 0.01  # nn.LeakyReLU default, used by the lrelu variant of SameBlock2d


class SameBlock2d(nn.Module):
    """``act(BN(conv(x)))`` keeping the spatial size; act is ReLU or LeakyReLU(0.01)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        *,
        lrelu: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_channels)
        self.lrelu = lrelu

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        out = self.norm(self.conv(x))
        return F.leaky_relu(out, LEAKY_SLOPE) if self.lrelu else F.relu(out)


class DownBlock2d(nn.Module):
    """``avgpool2(ReLU(BN(conv(x))))``: halves height and width."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class DownBlock3d(nn.Module):
    """``avgpool(1,2,2)(ReLU(BN3d(conv3d(x))))``: halves height and width, keeps depth."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, D, H, W) -> (B, C_out, D, H/2, W/2)."""
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), (1, 2, 2))


class UpBlock3d(nn.Module):
    """``ReLU(BN3d(conv3d(nearest_upsample(1,2,2)(x))))``: doubles height and width, keeps depth."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, D, H, W) -> (B, C_out, D, 2H, 2W)."""
        up = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return F.relu(self.norm(self.conv(up)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: ``x + conv2(ReLU(BN(conv1(ReLU(BN(x))))))`` with 3x3x3 convs."""

    def __init__(self, channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(channels)
        self.norm2 = nn.BatchNorm3d(channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, D, H, W) -> (B, C, D, H, W)."""
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _hourglass_width(block_expansion: int, max_features: int, level: int) -> int:
    """Channels after ``level`` down blocks (level >= 1) of the hourglass."""
    return min(max_features, block_expansion * 2**level)


class HourglassEncoder3d(nn.Module):
    """``num_blocks`` `DownBlock3d`; returns the input and every block output (deepest last)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = [in_features] + [
            _hourglass_width(block_expansion, max_features, i + 1) for i in range(num_blocks)
        ]
        self.down_blocks = nn.ModuleList(DownBlock3d(widths[i], widths[i + 1]) for i in range(num_blocks))

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, D, H, W) -> [x, then each level's output]."""
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder3d(nn.Module):
    """`UpBlock3d` stack with skip concatenation, then conv3d + BN3d + ReLU on ``block_expansion + in``."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for level in reversed(range(num_blocks)):
            deeper = _hourglass_width(block_expansion, max_features, level + 1)
            in_channels = deeper if level == num_blocks - 1 else 2 * deeper  # skip concatenated below
            blocks.append(UpBlock3d(in_channels, _hourglass_width(block_expansion, max_features, level)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, 3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, features: list[Tensor]) -> Tensor:
        """Encoder outputs (shallowest first) -> (B, block_expansion + in_features, D, H, W)."""
        out = features[-1]
        for block, skip in zip(self.up_blocks, reversed(features[:-1]), strict=True):
            out = torch.cat((block(out), skip), dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """U-Net over (C, D, H, W) volumes that halves only H and W at each of ``num_blocks`` levels."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256
    ) -> None:
        super().__init__()
        self.encoder = HourglassEncoder3d(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder3d(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_features, D, H, W) -> (B, out_filters, D, H, W); H, W divisible by 2**num_blocks."""
        return self.decoder(self.encoder(x))


def coordinate_grid_3d(
    depth: int,
    height: int,
    width: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """(D, H, W, 3) grid of normalised coordinates ``(x, y, z)`` = (width, height, depth) axes in [-1, 1].

    Axis value i of n is ``2 * (i / (n - 1)) - 1`` (the official formula, in this order), evaluated in
    float32 and cast to ``dtype``; the result is what ``grid_sample(align_corners=False)`` expects.
    """

    def axis(n: int) -> Tensor:
        return 2 * (torch.arange(n, device=device, dtype=torch.float32) / (n - 1)) - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    grid = torch.stack((x, y, z), dim=-1)
    return grid if dtype is None else grid.to(dtype)


def gaussian_heatmaps(keypoints: Tensor, grid: Tensor, variance: float) -> Tensor:
    """Unnormalised Gaussians around keypoints: ``exp(-0.5 * |grid - kp|^2 / variance)``.

    Args:
        keypoints: (..., 3) in grid coordinates.
        grid: (D, H, W, 3) from `coordinate_grid_3d`.
        variance: the shared isotropic variance.

    Returns:
        (..., D, H, W).
    """
    offsets = grid - keypoints[..., None, None, None, :]
    return torch.exp(-0.5 * offsets.square().sum(-1) / variance)
