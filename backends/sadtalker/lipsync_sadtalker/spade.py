"""SPADE decoder of the SadTalker face renderer, with spectral-norm convolutions in their eval form.

SPADE (Park et al., "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019):
instance-normalised activations are modulated per pixel by a scale and shift predicted from a
conditioning map; here the map is the warped 256-channel feature itself. Attribute names reproduce
the official ``decoder.*`` state-dict keys of ``OcclusionAwareSPADEGenerator``.

Two inference shortcuts, both equal to the official computation up to float rounding: spectral-norm
weights are divided once and cached (`SpectralNormConv2d`), and the SPADE conditioning conv of the
upsampling blocks runs at the conditioning map's own resolution instead of on its nearest-upsampled
copy (`upsampled_conv3x3`; ~10 % less arithmetic per 256 frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SPADE", "SPADEDecoder", "SPADEResnetBlock", "SpectralNormConv2d", "upsampled_conv3x3"]

SPADE_HIDDEN: Final = 128  # channels of the shared conditioning conv in every SPADE layer
LEAKY_SLOPE: Final = 0.2
_INIT_POWER_ITERATIONS: Final = 20  # only for freshly initialised (not loaded) weights


def _spectral_sigma(weight: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """``u · (W v)`` with ``W`` the weight as an (out, rest) matrix: the eval-mode spectral norm estimate."""
    return torch.dot(u, torch.mv(weight.flatten(1), v))


class SpectralNormConv2d(nn.Module):
    """A Conv2d whose weight is ``weight_orig / sigma`` with ``sigma = u · (W v)`` (stored u, v).

    This is what ``torch.nn.utils.spectral_norm`` computes in eval mode: no power iteration, so the
    result depends only on the state-dict entries ``weight_orig``, ``weight_u``, ``weight_v`` (and
    ``bias``). The divided weight is cached and recomputed only when one of those tensors changes
    (loading, moving to another device or dtype), so inference pays for it once. The module always
    uses the stored u, v, also in training mode (there is no power iteration here).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.padding = padding
        # Registration order gives the official state-dict order: bias, weight_orig, weight_u, weight_v.
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))
        self._cached_weight: Tensor | None = None
        self._cache_key: tuple[object, ...] | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Conv2d's default initialisation; u, v set by power iteration so that sigma is the spectral norm."""
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))
        fan_in = self.weight_orig[0].numel()
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        if self.weight_orig.is_meta:  # shapes only
            return
        matrix = self.weight_orig.flatten(1)
        u = F.normalize(torch.randn_like(self.weight_u), dim=0)
        v = F.normalize(torch.randn_like(self.weight_v), dim=0)
        for _ in range(_INIT_POWER_ITERATIONS):
            v = F.normalize(torch.mv(matrix.t(), u), dim=0)
            u = F.normalize(torch.mv(matrix, v), dim=0)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def _source_key(self) -> tuple[object, ...]:
        tensors = (self.weight_orig, self.weight_u, self.weight_v)
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)

    @property
    def weight(self) -> Tensor:
        """The normalised weight (out, in, k, k), computed once per change of the stored tensors."""
        key = self._source_key()
        if self._cached_weight is None or key != self._cache_key:
            self._cached_weight = self._normalised_weight()
            self._cache_key = key
        return self._cached_weight

    def _normalised_weight(self) -> Tensor:
        # A plain tensor, also when first used under inference_mode, so the cache stays usable anywhere.
        with torch.inference_mode(False), torch.no_grad():
            weight = self.weight_orig.detach()
            # float32 stays float32 (bit-identical to the official division); half types divide in float32.
            compute = torch.promote_types(weight.dtype, torch.float32)
            sigma = _spectral_sigma(weight.to(compute), self.weight_u.to(compute), self.weight_v.to(compute))
            return (weight.to(compute) / sigma).to(weight.dtype)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        self._cached_weight, self._cache_key = None, None  # .to() / .half(): drop the old device's copy
        return super()._apply(fn, recurse)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W) for the 3x3 (padding 1) and 1x1 layers used here."""
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


# A 3x3 conv after nearest upsampling by s >= 2: kernel row k of an output row at phase a (row s*i + a)
# reads upsampled row s*i + a + k - 1, i.e. source row i + floor((a + k - 1) / s). Kernel rows that read
# the same source row can be summed first: phase 0 reads source offsets (-1, 0) with kernel rows
# (0 | 1, 2), phases 1 .. s-2 read offset 0 with rows (0, 1, 2), phase s-1 reads offsets (0, +1) with
# rows (0, 1 | 2). Each entry: (output phases, first source offset, kernel rows summed per offset).
_PhaseRows = tuple[slice, int, tuple[range, ...]]


def _phase_rows(scale: int) -> list[_PhaseRows]:
    rows: list[_PhaseRows] = [(slice(0, 1), -1, (range(0, 1), range(1, 3)))]
    if scale > 2:
        rows.append((slice(1, scale - 1), 0, (range(0, 3),)))
    rows.append((slice(scale - 1, scale), 0, (range(0, 2), range(2, 3))))
    return rows


def _collapse(weight: Tensor, groups: tuple[range, ...], dim: int) -> Tensor:
    """Sum the kernel rows (dim 2) or columns (dim 3) of ``weight`` within each group."""
    return torch.stack([weight.narrow(dim, g.start, len(g)).sum(dim) for g in groups], dim)


def upsampled_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None, scale: int) -> Tensor:
    """``conv2d(nearest_upsample(x, scale), weight, bias, padding=1)`` evaluated at the resolution of x.

    A 3x3 conv over a nearest-upsampled map only ever combines 2 x 2 (or fewer) distinct source pixels
    per output pixel, so every output phase is a small conv of ``x`` with summed kernel taps. For
    scale 4 this does 25 instead of 144 taps per source pixel. Equal to the direct computation up to
    float rounding.

    Args:
        x: (B, C_in, h, w).
        weight: (C_out, C_in, 3, 3).
        bias: (C_out,) or None.
        scale: integer upsampling factor >= 2.

    Returns:
        (B, C_out, scale * h, scale * w).
    """
    batch, _, height, width = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    out = x.new_empty(batch, weight.shape[0], height, scale, width, scale)
    phase_rows = _phase_rows(scale)
    for row_phases, row_offset, row_groups in phase_rows:
        row_kernel = _collapse(weight, row_groups, 2)
        for col_phases, col_offset, col_groups in phase_rows:
            kernel = _collapse(row_kernel, col_groups, 3)
            y = F.conv2d(padded, kernel, bias)  # window starting at padded (p, q) = source (p - 1, q - 1)
            y = y[:, :, 1 + row_offset : 1 + row_offset + height, 1 + col_offset : 1 + col_offset + width]
            out[:, :, :, row_phases, :, col_phases] = y[:, :, :, None, :, None]
    return out.view(batch, weight.shape[0], scale * height, scale * width)


def _integer_scale(source: tuple[int, int], target: tuple[int, int]) -> int | None:
    """The common integer factor from ``source`` (h, w) to ``target`` (H, W), or None."""
    (h, w), (big_h, big_w) = source, target
    if big_h % h or big_w % w or big_h // h != big_w // w:
        return None
    return big_h // h


class SPADE(nn.Module):
    """``IN(x) * (1 + gamma(seg)) + beta(seg)``; seg is resized (nearest) to x, IN has no affine."""

    def __init__(self, norm_channels: int, label_channels: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, SPADE_HIDDEN, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(SPADE_HIDDEN, norm_channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(SPADE_HIDDEN, norm_channels, 3, padding=1)

    def conditioning(self, segmap: Tensor, size: tuple[int, int]) -> Tensor:
        """``mlp_shared(nearest_resize(segmap, size))``; no upsampled copy for integer size ratios."""
        scale = _integer_scale((segmap.shape[-2], segmap.shape[-1]), size)
        if scale == 1:
            return self.mlp_shared(segmap)
        conv = self.mlp_shared[0]
        if scale is not None:
            return F.relu(upsampled_conv3x3(segmap, conv.weight, conv.bias, scale))
        return self.mlp_shared(F.interpolate(segmap, size=size, mode="nearest"))

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        """x (B, C, H, W), segmap (B, label, h, w) -> (B, C, H, W)."""
        normalized = F.instance_norm(x, eps=1e-5)
        hidden = self.conditioning(segmap, (x.shape[-2], x.shape[-1]))
        return normalized * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResnetBlock(nn.Module):
    """Residual block of two SPADE + LeakyReLU(0.2) + spectral-norm 3x3 conv stages.

    The shortcut is the identity when the channel count is unchanged, else a SPADE-normalised
    spectral-norm 1x1 conv without bias. The inner width is ``min(in, out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, label_channels: int) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels
        self.conv_0 = SpectralNormConv2d(in_channels, middle, 3, padding=1)
        self.conv_1 = SpectralNormConv2d(middle, out_channels, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(in_channels, out_channels, 1, bias=False)
        self.norm_0 = SPADE(in_channels, label_channels)
        self.norm_1 = SPADE(middle, label_channels)
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, label_channels)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        """x (B, in, H, W), segmap (B, label, h, w) -> (B, out, H, W)."""
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), LEAKY_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), LEAKY_SLOPE))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """256-channel feature at 1/4 resolution -> RGB image, every SPADE conditioned on that feature.

    fc 3x3 (256 -> 512), six 512-channel SPADE blocks, then twice (nearest x2, SPADE block:
    512 -> 256 -> 64), LeakyReLU(0.2), conv 3x3 to RGB, sigmoid.
    """

    def __init__(self, in_channels: int = 256, out_channels: int = 64, middle_blocks: int = 6) -> None:
        super().__init__()
        wide = 2 * in_channels
        self.fc = nn.Conv2d(in_channels, wide, 3, padding=1)
        for i in range(middle_blocks):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(wide, wide, in_channels))
        self.up_0 = SPADEResnetBlock(wide, in_channels, in_channels)
        self.up_1 = SPADEResnetBlock(in_channels, out_channels, in_channels)
        self.conv_img = nn.Conv2d(out_channels, 3, 3, padding=1)
        self.middle_blocks = middle_blocks

    def logits(self, feature: Tensor) -> Tensor:
        """(B, 256, h, w) -> (B, 3, 4h, 4w) pre-sigmoid RGB."""
        x = self.fc(feature)
        for i in range(self.middle_blocks):
            x = self.get_submodule(f"G_middle_{i}")(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2.0, mode="nearest"), feature)
        return self.conv_img(F.leaky_relu(x, LEAKY_SLOPE))

    def forward(self, feature: Tensor) -> Tensor:
        """(B, 256, h, w) -> (B, 3, 4h, 4w) RGB in [0, 1]."""
        return torch.sigmoid(self.logits(feature))
