"""RTMCCHead, RTMPose's SimCC head with a gated attention unit, under mmpose's state-dict key names.

From the RTMPose paper (Jiang et al., 2023, arXiv:2303.07399), the GAU of "Transformer Quality in Linear
Time" (Hua et al., 2022, arXiv:2202.10447) and the facts of mmpose's ``heads/coord_cls_heads/rtmcc_head.py``
and ``models/utils/rtmcc_block.py`` (Apache-2.0) as MuseTalk configures them: a 7×7 convolution to one map
per keypoint, each map flattened and projected to 256, one self-attention GAU over the 133 keypoint tokens
(no relative bias, no rotary encoding, SiLU), then two linear classifiers over the x and y bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RTMCCHead", "RTMCCHeadConfig"]


@dataclass(frozen=True)
class RTMCCHeadConfig:
    """Sizes of DWPose's head (COCO-WholeBody, 288×384 input)."""

    in_channels: int = 1024
    num_keypoints: int = 133
    input_size: tuple[int, int] = (288, 384)  # model input (width, height)
    featuremap_size: tuple[int, int] = (9, 12)  # backbone output (width, height) = input / 32
    split_ratio: float = 2.0  # SimCC bins per input pixel
    final_kernel: int = 7
    hidden_dims: int = 256
    attention_dims: int = 128  # the GAU's shared query/key size ``s``
    expansion_factor: int = 2

    @property
    def bins(self) -> tuple[int, int]:
        """Number of SimCC bins along x and y (576, 768)."""
        return int(self.input_size[0] * self.split_ratio), int(self.input_size[1] * self.split_ratio)


class ScaleNorm(nn.Module):
    """``g · x / max(‖x‖ / √dim, eps)`` over the last axis, one learned scalar ``g``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Multiplies by a learned per-channel vector (the GAU's residual scale)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class GatedAttentionUnit(nn.Module):
    """Self-attention GAU with squared-ReLU attention and a scaled residual (mmpose's ``RTMCCBlock``).

    Args:
        dims: token size (input = output, so the residual branch is always on).
        attention_dims: size ``s`` of the shared base from which queries and keys are made.
        expansion_factor: the gated value width ``e`` is ``dims * expansion_factor``.
    """

    def __init__(self, dims: int, attention_dims: int, expansion_factor: int) -> None:
        super().__init__()
        self.e = dims * expansion_factor
        self.s = attention_dims
        self.o = nn.Linear(self.e, dims, bias=False)
        self.uv = nn.Linear(dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.ones(2, self.s))
        self.beta = nn.Parameter(torch.zeros(2, self.s))
        self.ln = ScaleNorm(dims)
        self.res_scale = Scale(dims)

    def forward(self, x: Tensor) -> Tensor:
        """(B, K, dims) -> (B, K, dims)."""
        u, v, base = torch.split(F.silu(self.uv(self.ln(x))), [self.e, self.e, self.s], dim=2)
        q, k = torch.unbind(base.unsqueeze(2) * self.gamma + self.beta, dim=2)
        kernel = torch.square(F.relu(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(self.s)))
        return self.res_scale(x) + self.o(u * torch.bmm(kernel, v))


class RTMCCHead(nn.Module):
    """Backbone feature map -> per-keypoint SimCC logits along x and y."""

    def __init__(self, config: RTMCCHeadConfig | None = None) -> None:
        super().__init__()
        config = config or RTMCCHeadConfig()
        flat = config.featuremap_size[0] * config.featuremap_size[1]
        self.final_layer = nn.Conv2d(
            config.in_channels, config.num_keypoints, config.final_kernel, padding=config.final_kernel // 2
        )
        self.mlp = nn.Sequential(ScaleNorm(flat), nn.Linear(flat, config.hidden_dims, bias=False))
        self.gau = GatedAttentionUnit(config.hidden_dims, config.attention_dims, config.expansion_factor)
        bins_x, bins_y = config.bins
        self.cls_x = nn.Linear(config.hidden_dims, bins_x, bias=False)
        self.cls_y = nn.Linear(config.hidden_dims, bins_y, bias=False)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1024, 12, 9) -> SimCC x logits (B, 133, 576) and y logits (B, 133, 768)."""
        tokens = self.gau(self.mlp(torch.flatten(self.final_layer(features), 2)))
        return self.cls_x(tokens), self.cls_y(tokens)
