"""Network building blocks that several backends share (torch).

`ConvBlock` reproduces the state-dict layout of Wav2Lip's ``models/conv.py``
(``<name>.conv_block.0.*`` for the convolution, ``<name>.conv_block.1.*`` for its BatchNorm2d).
`make_audio_encoder` builds the mel-window encoder of Wav2Lip's generator and SyncNet; SadTalker's
ExpNet and PoseVAE reuse the same layout, so all of their official checkpoints load without remapping.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock", "Size2", "conv_stage", "make_audio_encoder"]

Size2 = int | tuple[int, int]


class ConvBlock(nn.Module):
    """``ReLU(BN(conv(x)) [+ x])``: a biased convolution, BatchNorm2d, optional residual add, ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: convolution kernel.
        stride: convolution stride.
        padding: convolution zero padding.
        residual: add the block input before the ReLU; needs ``in_channels == out_channels`` and a
            shape-preserving convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        stride: Size2 = 1,
        padding: Size2 = 0,
        *,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"a residual block needs in == out channels, got {in_channels}, {out_channels}")
        self.conv_block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
            nn.BatchNorm2d(out_channels),
        )
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return F.relu(out)


def conv_stage(
    in_channels: int,
    out_channels: int,
    residual_blocks: int,
    *,
    kernel_size: Size2 = 3,
    stride: Size2 = 2,
    padding: Size2 = 1,
) -> list[nn.Module]:
    """One `ConvBlock` ``in -> out`` (usually strided) followed by ``residual_blocks`` residual 3x3 blocks."""
    first = ConvBlock(in_channels, out_channels, kernel_size, stride, padding)
    rest = [ConvBlock(out_channels, out_channels, 3, 1, 1, residual=True) for _ in range(residual_blocks)]
    return [first, *rest]


def make_audio_encoder(residual_blocks_at_256: int) -> nn.Sequential:
    """The mel-window encoder: 1 residual block at 256 channels in Wav2Lip's generator and in
    SadTalker's ExpNet and PoseVAE (13 blocks), 2 in Wav2Lip's SyncNet (14 blocks).

    Maps a mel window (B, 1, 80, 16) to an embedding (B, 512, 1, 1); the spatial size shrinks
    80 x 16 -> 27 x 16 -> 9 x 6 -> 3 x 3 -> 1 x 1.
    """
    return nn.Sequential(
        *conv_stage(1, 32, 2, stride=1),
        *conv_stage(32, 64, 2, stride=(3, 1)),
        *conv_stage(64, 128, 2, stride=3),
        *conv_stage(128, 256, residual_blocks_at_256, stride=(3, 2)),
        ConvBlock(256, 512, 3, 1, 0),
        ConvBlock(512, 512, 1, 1, 0),
    )
