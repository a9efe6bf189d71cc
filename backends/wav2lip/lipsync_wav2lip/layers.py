"""Building blocks shared by the Wav2Lip networks, and batch-norm folding for inference.

The blocks reproduce the state-dict layout of the official ``models/conv.py`` in
github.com/Rudrabha/Wav2Lip (``<name>.conv_block.0.*`` for the convolution,
``<name>.conv_block.1.*`` for its BatchNorm2d), so official checkpoints load without remapping.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvBlock",
    "ConvTransposeBlock",
    "FoldedConvBlock",
    "conv_stage",
    "fold_batchnorm",
    "make_audio_encoder",
]

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


class ConvTransposeBlock(nn.Module):
    """``ReLU(BN(conv_transpose(x)))``: a biased transposed convolution, BatchNorm2d, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        stride: Size2 = 1,
        padding: Size2 = 0,
        output_padding: Size2 = 0,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(out_channels),
        )
        # Same interface as ConvBlock so that `fold_batchnorm` treats both alike.
        self.residual = False

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        return F.relu(self.conv_block(x))


class FoldedConvBlock(nn.Module):
    """A `ConvBlock` or `ConvTransposeBlock` with its BatchNorm folded into the convolution (eval)."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, *, residual: bool) -> None:
        super().__init__()
        self.conv = conv
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W')."""
        out = self.conv(x)
        if self.residual:
            out += x
        return out.relu_()


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
    """The mel-window encoder of the generator (1 residual block at 256 channels) and SyncNet (2).

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


@torch.no_grad()
def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Conv2d | nn.ConvTranspose2d:
    """A copy of ``conv`` computing ``bn(conv(x))`` with the running statistics of ``bn``."""
    if conv.groups != 1:
        raise ValueError("folding supports ungrouped convolutions only")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("folding needs a BatchNorm2d with running statistics")
    # Folded in float64: the products below otherwise add rounding noise close to the 1e-5 golden tolerance.
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    # Output channels: axis 0 of Conv2d weights (out, in, kh, kw), 1 of ConvTranspose2d (in, out, kh, kw).
    out_axis_shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)

    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter((conv.weight.double() * scale.view(out_axis_shape)).to(conv.weight.dtype))
    folded.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype))
    return folded


def _replace_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, ConvBlock | ConvTransposeBlock):
            conv, bn = child.conv_block
            setattr(module, name, FoldedConvBlock(_fold(conv, bn), residual=child.residual))
        else:
            _replace_blocks(child)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An inference-only copy of ``module`` with every block's BatchNorm folded into its convolution.

    The copy computes the same function as ``module.eval()`` (up to float rounding) with one
    convolution per block instead of a convolution and a normalisation; its state-dict keys differ
    from the official ones, so load weights before folding. ``module`` itself is left unchanged.
    The copy is returned in eval mode with gradients off.
    """
    folded = copy.deepcopy(module).eval()
    _replace_blocks(folded)
    return folded.requires_grad_(False)
