"""Wav2Lip's transposed-convolution block, and batch-norm folding for inference.

`ConvTransposeBlock` follows the state-dict layout of the official ``models/conv.py`` in
github.com/Rudrabha/Wav2Lip like `lipsync_kit.layers.ConvBlock` (the plain block and the audio
encoder, shared with other backends, live in the kit).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from lipsync_kit.layers import ConvBlock, Size2
from torch import Tensor, nn

__all__ = ["ConvTransposeBlock", "FoldedConvBlock", "fold_batchnorm"]


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
