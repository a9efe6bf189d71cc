"""BiSeNet face parsing (19 classes) under the key names of ``79999_iter.pth``.

BiSeNet: Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation" (ECCV 2018),
as trained for CelebAMask-HQ by zllrunning/face-parsing.PyTorch (MIT) and vendored by MuseTalk in
``musetalk/utils/face_parsing/model.py`` and ``resnet.py``. This variant has no spatial path: the ResNet-18
1/8 feature takes its place in the fusion module. The ResNet-18 is written out here (``cp.resnet.*``) with
torchvision's layout; its ImageNet file is never needed, since ``79999_iter.pth`` holds every value.
Only the main output is computed; the two auxiliary heads exist for the checkpoint's keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NUM_CLASSES", "BiSeNet"]

NUM_CLASSES = 19  # CelebAMask-HQ: 0 background, 1 skin, 10 nose, 11 mouth, 12/13 lips, 14 neck, 17 hair, ...


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv+BN, a 1×1 projection shortcut when the shape changes, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if in_channels != out_channels or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _layer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels)
    )


class ResNet18(nn.Module):
    """ResNet-18 trunk returning the 1/8, 1/16 and 1/32 features (128, 256, 512 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = _layer(64, 64, 1)
        self.layer2 = _layer(64, 128, 2)
        self.layer3 = _layer(128, 256, 2)
        self.layer4 = _layer(256, 512, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class ConvBNReLU(nn.Module):
    """``ReLU(BN(conv(x)))`` with an unbiased convolution (keys ``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _global_mean(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinement(nn.Module):
    """ConvBNReLU, then a per-channel sigmoid gate computed from its global average."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(_global_mean(feat))))


class ContextPath(nn.Module):
    """ResNet-18 with attention refinement at 1/16 and 1/32 and a global-context term, upsampled to 1/8."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel_size=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """-> the ResNet 1/8 feature (128 ch) and the refined context at 1/8 (128 ch)."""
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(_global_mean(feat32))  # broadcast = nearest upsampling of a 1×1 map
        up32 = F.interpolate(self.arm32(feat32) + context, feat16.shape[2:], mode="nearest")
        up16 = F.interpolate(self.arm16(feat16) + self.conv_head32(up32), feat8.shape[2:], mode="nearest")
        return feat8, self.conv_head16(up16)


class FeatureFusion(nn.Module):
    """Concatenate, ConvBNReLU, and add a squeeze-excitation re-weighted copy of the result."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, kernel_size=1)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(_global_mean(feat)))))
        return feat * gate + feat


class OutputHead(nn.Module):
    """ConvBNReLU then a 1×1 classifier."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """Normalised RGB (B, 3, H, W) -> class logits (B, 19, H, W) (H, W multiples of 32)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, num_classes)
        self.conv_out16 = OutputHead(128, 64, num_classes)  # auxiliary heads: training only
        self.conv_out32 = OutputHead(128, 64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        feat8, context8 = self.cp(x)
        logits = self.conv_out(self.ffm(feat8, context8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)
