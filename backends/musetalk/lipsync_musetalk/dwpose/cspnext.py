"""CSPNeXt-P5, the backbone of RTMPose-l ("DWPose"), under mmdet/mmpose's state-dict key names.

Architecture from the RTMDet paper (Lyu et al., 2022, arXiv:2212.07784) and the facts of mmdet's
``mmdet/models/backbones/cspnext.py`` / ``layers/csp_layer.py`` (Apache-2.0) as configured by MuseTalk's
``rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288.py``: widen and deepen factors 1.0, expand ratio 0.5,
channel attention on, SiLU, BatchNorm with PyTorch's default eps (the config's ``SyncBN`` replaces mmdet's
``eps=1e-3`` default, and SyncBN becomes BatchNorm for inference). Only the last stage's output is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CSPNeXt", "CSPNeXtConfig"]


@dataclass(frozen=True)
class CSPNeXtConfig:
    """Stage sizes of CSPNeXt-P5 at widen/deepen 1.0 (RTMPose-l)."""

    stem_channels: int = 64
    stage_channels: tuple[int, ...] = (128, 256, 512, 1024)
    stage_blocks: tuple[int, ...] = (3, 6, 6, 3)
    expand_ratio: float = 0.5
    block_kernel: int = 5  # the depthwise convolution of each CSPNeXt block
    spp_kernels: tuple[int, ...] = (5, 9, 13)  # max-pool sizes of the last stage's SPP bottleneck


class ConvModule(nn.Sequential):
    """``SiLU(BN(conv(x)))`` with an unbiased convolution: mmcv's ConvModule (keys ``conv``, ``bn``)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.SiLU()


class DepthwiseSeparableConv(nn.Sequential):
    """A depthwise then a pointwise ConvModule (mmcv's DepthwiseSeparableConvModule)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, groups=in_channels)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1)


class CSPNeXtBlock(nn.Module):
    """3×3 ConvModule, then a 5×5 depthwise-separable one, with an optional identity shortcut."""

    def __init__(self, channels: int, kernel_size: int, add_identity: bool) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3)
        self.conv2 = DepthwiseSeparableConv(channels, channels, kernel_size)
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Scales each channel by ``hardsigmoid(fc(global average))`` (effective squeeze-excitation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * F.hardsigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: a block chain on half the channels, concatenated with a shortcut half."""

    def __init__(self, channels: int, num_blocks: int, config: CSPNeXtConfig, add_identity: bool) -> None:
        super().__init__()
        hidden = int(channels * config.expand_ratio)
        self.main_conv = ConvModule(channels, hidden, 1)
        self.short_conv = ConvModule(channels, hidden, 1)
        self.final_conv = ConvModule(2 * hidden, channels, 1)
        self.blocks = nn.Sequential(
            *(CSPNeXtBlock(hidden, config.block_kernel, add_identity) for _ in range(num_blocks))
        )
        self.attention = ChannelAttention(2 * hidden)

    def forward(self, x: Tensor) -> Tensor:
        joined = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        return self.final_conv(self.attention(joined))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: halve the channels, concatenate stride-1 max-pools, project back."""

    def __init__(self, channels: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        hidden = channels // 2
        self.conv1 = ConvModule(channels, hidden, 1)
        self.kernels = kernels
        self.conv2 = ConvModule(hidden * (len(kernels) + 1), channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        pooled = [F.max_pool2d(x, k, stride=1, padding=k // 2) for k in self.kernels]
        return self.conv2(torch.cat([x, *pooled], dim=1))


class CSPNeXt(nn.Module):
    """The backbone: a 3-conv stem (stride 2) and four stride-2 stages; forward returns stage 4 only.

    Stage ``i`` is ``stage{i}.0`` (3×3 stride-2 ConvModule), for the last stage ``stage4.1`` (SPP), then the
    CSP layer; the first three stages' blocks add an identity shortcut, the last one's do not.
    """

    def __init__(self, config: CSPNeXtConfig | None = None) -> None:
        super().__init__()
        config = config or CSPNeXtConfig()
        half = config.stem_channels // 2
        self.stem = nn.Sequential(
            ConvModule(3, half, 3, stride=2),
            ConvModule(half, half, 3),
            ConvModule(half, config.stem_channels, 3),
        )
        in_channels = config.stem_channels
        last = len(config.stage_channels) - 1
        for index, (channels, blocks) in enumerate(
            zip(config.stage_channels, config.stage_blocks, strict=True)
        ):
            layers: list[nn.Module] = [ConvModule(in_channels, channels, 3, stride=2)]
            if index == last:
                layers.append(SPPBottleneck(channels, config.spp_kernels))
            layers.append(CSPLayer(channels, blocks, config, add_identity=index != last))
            self.add_module(f"stage{index + 1}", nn.Sequential(*layers))
            in_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) normalised RGB -> (B, 1024, H/32, W/32)."""
        x = self.stem(x)
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
        return x
