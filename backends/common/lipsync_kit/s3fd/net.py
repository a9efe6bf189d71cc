"""S3FD face detector network (Zhang et al., "S3FD: Single Shot Scale-invariant Face Detector", ICCV 2017).

Matches ``face_detection/detection/sfd/net_s3fd.py`` of Wav2Lip (a batched copy of face-alignment's S3FD):
module names equal the official checkpoint keys (``s3fd-619a316812.pth``), so its state dict loads with
``strict=True`` and no remapping. Anchors, decoding and NMS live in `lipsync_kit.s3fd.boxes`.
"""

from __future__ import annotations

import os
from typing import ClassVar, Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import load_into, load_state_dict_file

__all__ = ["MEAN_RGB", "S3FD", "SOURCES", "STRIDES", "L2Norm", "load_s3fd"]

MEAN_RGB: Final = (104.0, 117.0, 123.0)  # subtracted in RGB order although the numbers are Caffe's BGR means
# Output channels of conv{stage}_{i}; every stage ends in a 2x2 max-pool.
VGG_STAGES: Final = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Detection sources: (name, channels, class channels, L2Norm initial scale or None).
SOURCES: Final = (
    ("conv3_3_norm", 256, 4, 10.0),  # 4 class channels: 3 background logits max-out to one
    ("conv4_3_norm", 512, 2, 8.0),
    ("conv5_3_norm", 512, 2, 5.0),
    ("fc7", 1024, 2, None),
    ("conv6_2", 512, 2, None),
    ("conv7_2", 256, 2, None),
)
STRIDES: Final = tuple(2 ** (level + 2) for level in range(len(SOURCES)))  # 4 ... 128 px per feature cell


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (ParseNet).

    Args:
        channels: number of input channels.
        scale: initial value of every ``weight`` entry (the checkpoint overrides it).
        eps: added to the norm, not clamped, as in the official layer.
    """

    def __init__(self, channels: int, scale: float, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


class S3FD(nn.Module):
    """VGG16 trunk, two extra stages and six detection heads; one square anchor per feature cell."""

    # The VGG stage whose max-pool rounds odd maps up (None: all round down, as face-alignment runs it).
    ceil_pool_stage: ClassVar[int | None] = None

    def __init__(self) -> None:
        super().__init__()
        in_ch = 3
        for stage, widths in enumerate(VGG_STAGES, start=1):
            for i, out_ch in enumerate(widths, start=1):
                self.add_module(f"conv{stage}_{i}", nn.Conv2d(in_ch, out_ch, 3, padding=1))
                in_ch = out_ch
        # fc6 is VGG's fc6 turned into a convolution; padding 3 without dilation grows the map by 4 per side
        # pair (7x10 -> 11x14 on a 240x320 input). Kept as in the checkpoint: the weights were trained so.
        self.fc6 = nn.Conv2d(512, 1024, 3, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.conv6_1 = nn.Conv2d(1024, 256, 1)
        self.conv6_2 = nn.Conv2d(256, 512, 3, stride=2, padding=1)
        self.conv7_1 = nn.Conv2d(512, 128, 1)
        self.conv7_2 = nn.Conv2d(128, 256, 3, stride=2, padding=1)
        for name, channels, _, scale in SOURCES:
            if scale is not None:
                self.add_module(name, L2Norm(channels, scale))
        for name, channels, n_cls, _ in SOURCES:
            self.add_module(f"{name}_mbox_conf", nn.Conv2d(channels, n_cls, 3, padding=1))
            self.add_module(f"{name}_mbox_loc", nn.Conv2d(channels, 4, 3, padding=1))

    def _relu_conv(self, name: str, x: Tensor) -> Tensor:
        return F.relu(self.get_submodule(name)(x), inplace=True)

    def forward(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Raw head outputs per level.

        Args:
            x: (B, 3, H, W) float32, RGB pixel values in [0, 255] minus `MEAN_RGB`.

        Returns:
            Six ``(cls, reg)`` pairs, level ``l`` at stride ``STRIDES[l]``: ``cls`` (B, 2, H_l, W_l) logits
            (background, face) before softmax, ``reg`` (B, 4, H_l, W_l) anchor offsets (dx, dy, dw, dh).
        """
        sources: list[Tensor] = []
        h = x
        for stage, widths in enumerate(VGG_STAGES, start=1):
            for i in range(1, len(widths) + 1):
                h = self._relu_conv(f"conv{stage}_{i}", h)
            if stage >= 3:
                sources.append(h)
            h = F.max_pool2d(h, 2, 2, ceil_mode=stage == self.ceil_pool_stage)
        for names in (("fc6", "fc7"), ("conv6_1", "conv6_2"), ("conv7_1", "conv7_2")):
            for name in names:
                h = self._relu_conv(name, h)
            sources.append(h)

        outputs: list[tuple[Tensor, Tensor]] = []
        for feat, (name, _, _, scale) in zip(sources, SOURCES, strict=True):
            if scale is not None:
                feat = self.get_submodule(name)(feat)
            cls = self.get_submodule(f"{name}_mbox_conf")(feat)
            reg = self.get_submodule(f"{name}_mbox_loc")(feat)
            if cls.shape[1] == 4:
                cls = torch.cat([cls[:, :3].amax(dim=1, keepdim=True), cls[:, 3:]], dim=1)
            outputs.append((cls, reg))
        return outputs


def load_s3fd(path: str | os.PathLike[str], device: str | torch.device) -> S3FD:
    """S3FD in eval mode on ``device``, loaded strictly from ``s3fd-619a316812.pth`` (or a user's own file).

    Raises:
        lipsync_kit.errors.BackendError: ``weights_missing`` or ``bad_checkpoint``.
    """
    net = S3FD()
    load_into(net, load_state_dict_file(path), source=str(path))
    return net.eval().requires_grad_(False).to(device)
