"""SadTalker KPDetector: the 15 canonical 3-D keypoints of the source face.

Matches ``KPDetector`` (with ``KPHourglass`` and ``AntiAliasInterpolation2d``) in the official
``src/facerender/modules/keypoint_detector.py`` and ``util.py`` (github.com/OpenTalker/SadTalker),
which follow face-vid2vid (Wang et al., "One-Shot Free-View Neural Talking-Head Synthesis",
CVPR 2021). Parameter and buffer names equal the checkpoint keys (``kp_extractor.<key>`` in
``SadTalker_V0.0.2_<size>.safetensors``), so official weights load with ``strict=True``. Jacobians
(``estimate_jacobian``) are off in every SadTalker config and are not implemented.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .render_blocks import DownBlock2d, UpBlock3d, coordinate_grid_3d

__all__ = ["AntiAliasDownsample", "KPDetector", "KPHourglass", "default_antialias_kernel"]

TEMPERATURE: Final = 0.1  # softmax temperature of the keypoint heatmaps (facerender.yaml)
SCALE_FACTOR: Final = 0.25  # the detector sees the source at a quarter of its resolution


def default_antialias_kernel(channels: int, scale: float) -> Tensor:
    """The Gaussian the official code registers before loading: (channels, 1, k, k), sums to 1.

    sigma = (1/scale − 1) / 2 and k = 2·round(4·sigma) + 1 (1.5 and 13 at scale 0.25). Checkpoints
    store this buffer (``down.weight``), and what they store is what the detector uses.
    """
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    profile = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = profile[:, None] * profile[None, :]
    return (kernel / kernel.sum()).expand(channels, 1, size, size).clone()


class AntiAliasDownsample(nn.Module):
    """Depthwise blur with the stored kernel, zero padding, then every ``1/scale``-th pixel.

    Args:
        channels: image channels.
        scale: output/input size ratio; ``1/scale`` must be an integer.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        stride = round(1 / scale)
        if not math.isclose(stride * scale, 1.0):
            raise ValueError(f"1/scale must be an integer, got scale {scale}")
        self.stride = stride
        self.register_buffer("weight", default_antialias_kernel(channels, scale))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, ceil(H·scale), ceil(W·scale))."""
        size = self.weight.shape[-1]
        before, after = size // 2, size // 2 - (1 - size % 2)  # equal for the odd official kernels
        padded = F.pad(x, (before, after, before, after))
        # A strided convolution equals the official full-resolution blur followed by [::stride] slicing.
        return F.conv2d(padded, self.weight, stride=self.stride, groups=x.shape[1])


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class KPHourglass(nn.Module):
    """2-D down blocks, a 1×1 conv reshaped into a (C, D) volume, then 3-D up blocks (no skips).

    Args:
        block_expansion: width of the first level (doubled per level, capped at ``max_features``).
        in_features: image channels.
        reshape_features: channels of the 1×1 conv; split into ``reshape_depth`` depth slices.
        reshape_depth: depth of the 3-D volume.
        num_blocks: down and up blocks.
        max_features: channel cap.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        reshape_features: int,
        reshape_depth: int,
        num_blocks: int,
        max_features: int,
    ) -> None:
        super().__init__()
        levels = [_width(block_expansion, max_features, level) for level in range(num_blocks + 1)]
        down_widths = [in_features, *levels[1:]]
        self.down_blocks = nn.Sequential(
            OrderedDict(
                (f"down{i}", DownBlock2d(down_widths[i], down_widths[i + 1])) for i in range(num_blocks)
            )
        )
        self.conv = nn.Conv2d(down_widths[-1], reshape_features, kernel_size=1)
        up_widths = levels[::-1]
        self.up_blocks = nn.Sequential(
            OrderedDict((f"up{i}", UpBlock3d(up_widths[i], up_widths[i + 1])) for i in range(num_blocks))
        )
        self.reshape_depth = reshape_depth
        self.out_filters = up_widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, out_filters, reshape_depth, H, W); H, W divisible by 2**num_blocks."""
        out = self.conv(self.down_blocks(x))
        batch, channels, height, width = out.shape
        out = out.view(batch, channels // self.reshape_depth, self.reshape_depth, height, width)
        return self.up_blocks(out)


class KPDetector(nn.Module):
    """Image -> K keypoints in [−1, 1]³: the expectation of a softmax heatmap over a 3-D grid.

    Defaults are the ``kp_detector_params`` of facerender.yaml (used at 256 and 512 px).

    Args:
        block_expansion, max_features, num_blocks: hourglass widths and depth.
        num_kp: keypoints (heatmaps).
        image_channel: input channels.
        reshape_channel, reshape_depth: the hourglass' 2-D -> 3-D reshape.
        temperature: heatmap softmax temperature.
        scale_factor: anti-aliased down-sampling of the input before the hourglass.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_kp: int = 15,
        image_channel: int = 3,
        max_features: int = 1024,
        reshape_channel: int = 16384,
        reshape_depth: int = 16,
        num_blocks: int = 5,
        temperature: float = TEMPERATURE,
        scale_factor: float = SCALE_FACTOR,
    ) -> None:
        super().__init__()
        self.predictor = KPHourglass(
            block_expansion, image_channel, reshape_channel, reshape_depth, num_blocks, max_features
        )
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.temperature = temperature
        self.down = AntiAliasDownsample(image_channel, scale_factor) if scale_factor != 1 else nn.Identity()

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) float32 in [0, 1] -> (B, num_kp, 3) keypoints ``(x, y, z)`` in [−1, 1]."""
        heatmaps = self.kp(self.predictor(self.down(image)))
        batch, num_kp, depth, height, width = heatmaps.shape
        probabilities = torch.softmax(heatmaps.view(batch, num_kp, -1) / self.temperature, dim=2)
        grid = coordinate_grid_3d(depth, height, width, device=image.device, dtype=probabilities.dtype)
        return probabilities @ grid.view(-1, 3)
