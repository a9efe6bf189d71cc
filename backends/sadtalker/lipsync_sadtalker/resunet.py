"""The residual U-Net that PoseVAE runs over a (time x pose) plane.

State-dict layout of ``ResUnet`` in ``src/audio2pose_models/res_unet.py`` of
github.com/OpenTalker/SadTalker (``cd4c046``). Input (B, 1, 32, 6): all down- and upsampling acts
on the 32 time steps only (32 -> 16 -> 8 -> 4 -> back), the 6 pose channels keep their width.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor, nn

__all__ = ["ResUnet"]

FILTERS: Final = (32, 64, 128, 256)
TIME_STRIDE: Final = (2, 1)  # halve (or double) the time axis, keep the pose axis


class ResidualConv(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv(stride)-BN-ReLU-conv, plus a conv(stride)-BN skip (3x3)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int | tuple[int, int]) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, stride, 1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.conv_skip = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x) + self.conv_skip(x)


class Upsample(nn.Module):
    """Transposed convolution that doubles the time axis."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(channels, channels, TIME_STRIDE, TIME_STRIDE)

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample(x)


class ResUnet(nn.Module):
    """(B, 1, T, W) -> (B, 1, T, W) in (0, 1); T must be a multiple of 8."""

    def __init__(self) -> None:
        super().__init__()
        f0, f1, f2, f3 = FILTERS
        self.input_layer = nn.Sequential(
            nn.Conv2d(1, f0, 3, 1, 1),
            nn.BatchNorm2d(f0),
            nn.ReLU(),
            nn.Conv2d(f0, f0, 3, 1, 1),
        )
        self.input_skip = nn.Sequential(nn.Conv2d(1, f0, 3, 1, 1))
        self.residual_conv_1 = ResidualConv(f0, f1, TIME_STRIDE)
        self.residual_conv_2 = ResidualConv(f1, f2, TIME_STRIDE)
        self.bridge = ResidualConv(f2, f3, TIME_STRIDE)
        self.upsample_1 = Upsample(f3)
        self.up_residual_conv1 = ResidualConv(f3 + f2, f2, 1)
        self.upsample_2 = Upsample(f2)
        self.up_residual_conv2 = ResidualConv(f2 + f1, f1, 1)
        self.upsample_3 = Upsample(f1)
        self.up_residual_conv3 = ResidualConv(f1 + f0, f0, 1)
        self.output_layer = nn.Sequential(nn.Conv2d(f0, 1, 1, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        full = self.input_layer(x) + self.input_skip(x)  # T
        half = self.residual_conv_1(full)  # T / 2
        quarter = self.residual_conv_2(half)  # T / 4
        out = self.bridge(quarter)  # T / 8
        out = self.up_residual_conv1(torch.cat([self.upsample_1(out), quarter], dim=1))
        out = self.up_residual_conv2(torch.cat([self.upsample_2(out), half], dim=1))
        out = self.up_residual_conv3(torch.cat([self.upsample_3(out), full], dim=1))
        return self.output_layer(out)
