"""AWing face-alignment network: 98 WFLW landmarks from a face crop (Wang et al., "Adaptive Wing Loss for
Robust Face Alignment via Heatmap Regression", ICCV 2019), as packaged by facexlib and used by SadTalker.

Matches facexlib ``alignment/awing_arch.py`` (Apache-2.0, from protossw512/AdaptiveWingLoss; SadTalker keeps
a copy as ``src/face3d/util/my_awing_arch.py``): ``FAN(num_modules=4, num_landmarks=98)``, whose module names
equal the keys of ``alignment_WFLW_4HG.pth['state_dict']`` (no prefix), so it loads with ``strict=True``.
Also the upstream heatmap decoding (``calculate_points``, quirks kept) and facexlib's 98 -> 68 table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FAN",
    "HEATMAP_SIZE",
    "INPUT_SIZE",
    "LANDMARKS_98_TO_68",
    "NUM_LANDMARKS",
    "NUM_STACKS",
    "decode_heatmaps",
    "landmarks_98_to_68",
    "predict_landmarks98",
    "preprocess",
]

INPUT_SIZE: Final = 256  # face crops are resized to this square
HEATMAP_SIZE: Final = 64  # heatmap side: INPUT_SIZE / 4
NUM_LANDMARKS: Final = 98  # WFLW points; each stack also predicts one boundary heatmap
NUM_STACKS: Final = 4  # stacked hourglasses ("4HG")
HOURGLASS_DEPTH: Final = 4
FEATURES: Final = 256
BOUNDARY_THRESHOLD: Final = 0.05  # boundary heatmap value above which a pixel passes its coordinates on

# facexlib ``landmark_98_to_68``: each of the 68 points is one WFLW point or the mean of two (eyebrows).
LANDMARKS_98_TO_68: Final[tuple[tuple[int, ...], ...]] = (
    *((i,) for i in range(0, 33, 2)),  # jaw 0-16
    (33,), (34, 41), (35, 40), (36, 39), (37, 38),  # right eyebrow 17-21 (upper and lower edge averaged)
    (42, 50), (43, 49), (44, 48), (45, 47), (46,),  # left eyebrow 22-26
    *((i,) for i in range(51, 60)),  # nose 27-35
    (60,), (61,), (63,), (64,), (65,), (67,),  # right eye 36-41
    (68,), (69,), (71,), (72,), (73,), (75,),  # left eye 42-47
    *((i,) for i in range(76, 96)),  # mouth 48-67
)  # fmt: skip


class CoordConv(nn.Module):
    """Convolution over the input plus coordinate channels (CoordConv, Liu et al. 2018), AWing's variant.

    Appended channels, each in [-1, 1]: the row coordinate, the column coordinate, the radius divided by its
    maximum and, when a previous stack's heatmaps are given and ``with_boundary`` is set, the row and column
    coordinates masked to pixels whose boundary heatmap (the last channel) exceeds `BOUNDARY_THRESHOLD`.
    (Upstream calls the row channel ``xx``; with square maps only the order matters.)
    """

    def __init__(
        self, in_ch: int, out_ch: int, size: int, kernel: int, stride: int = 1, *, with_boundary: bool
    ) -> None:
        super().__init__()
        self.size = size
        self.with_boundary = with_boundary
        extra = 3 + (2 if with_boundary else 0)
        self.conv = nn.Conv2d(in_ch + extra, out_ch, kernel, stride, padding=kernel // 2)

    def forward(self, x: Tensor, heatmaps: Tensor | None = None) -> Tensor:
        batch, _, height, width = x.shape
        if (height, width) != (self.size, self.size):
            raise ValueError(f"CoordConv expects {self.size}x{self.size} inputs, got {height}x{width}")
        ramp = torch.arange(self.size, dtype=torch.float32, device=x.device) / (self.size - 1) * 2 - 1
        rows = ramp.view(1, 1, -1, 1).expand(batch, 1, height, width)
        cols = ramp.view(1, 1, 1, -1).expand(batch, 1, height, width)
        radius = torch.sqrt(rows.pow(2) + cols.pow(2))
        channels = [x, rows, cols, radius / radius.max()]
        if self.with_boundary and heatmaps is not None:
            on_boundary = heatmaps[:, -1:].clamp(0.0, 1.0) > BOUNDARY_THRESHOLD
            channels += [torch.where(on_boundary, rows, 0.0), torch.where(on_boundary, cols, 0.0)]
        return self.conv(torch.cat(channels, dim=1))


class ConvBlock(nn.Module):
    """Hierarchical, parallel and multi-scale block (Bulat & Tzimiropoulos): three pre-activation 3x3 convs
    of out/2, out/4, out/4 channels, concatenated, plus a (projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        half, quarter = out_ch // 2, out_ch // 4
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, padding=1, bias=False)
        self.downsample = (
            nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(), nn.Conv2d(in_ch, out_ch, 1, bias=False))
            if in_ch != out_ch
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.cat([out1, out2, out3], dim=1) + shortcut


class HourGlass(nn.Module):
    """A CoordConv 1x1 then a recursive hourglass of ``depth`` levels (average-pool down, nearest up).

    Blocks are named ``b1_<level>`` (skip), ``b2_<level>`` (after pooling), ``b3_<level>`` (before upsampling)
    and ``b2_plus_1`` (the bottom), registered in upstream's recursive order.
    """

    def __init__(self, depth: int, *, first: bool) -> None:
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(FEATURES, FEATURES, HEATMAP_SIZE, 1, with_boundary=not first)
        self._add_level(depth)

    def _add_level(self, level: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(FEATURES, FEATURES))
        self.add_module(f"b2_{level}", ConvBlock(FEATURES, FEATURES))
        if level > 1:
            self._add_level(level - 1)
        else:
            self.add_module("b2_plus_1", ConvBlock(FEATURES, FEATURES))
        self.add_module(f"b3_{level}", ConvBlock(FEATURES, FEATURES))

    def _level(self, level: int, x: Tensor) -> Tensor:
        skip = self.get_submodule(f"b1_{level}")(x)
        low = self.get_submodule(f"b2_{level}")(F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self.get_submodule("b2_plus_1")(low)
        low = self.get_submodule(f"b3_{level}")(low)
        return skip + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: Tensor, heatmaps: Tensor | None) -> Tensor:
        return self._level(self.depth, self.coordconv(x, heatmaps))


class FAN(nn.Module):
    """AWing's stacked-hourglass network: a stride-4 stem, then `NUM_STACKS` hourglasses with intermediate
    heatmap supervision (each stack re-injects its heatmaps and boundary into the next)."""

    def __init__(self, num_stacks: int = NUM_STACKS, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        self.num_stacks = num_stacks
        self.conv1 = CoordConv(3, 64, INPUT_SIZE, 7, stride=2, with_boundary=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, FEATURES)
        heatmaps = num_landmarks + 1  # the landmarks plus one face-boundary map
        for i in range(num_stacks):
            self.add_module(f"m{i}", HourGlass(HOURGLASS_DEPTH, first=i == 0))
            self.add_module(f"top_m_{i}", ConvBlock(FEATURES, FEATURES))
            self.add_module(f"conv_last{i}", nn.Conv2d(FEATURES, FEATURES, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(FEATURES))
            self.add_module(f"l{i}", nn.Conv2d(FEATURES, heatmaps, 1))
            if i < num_stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(FEATURES, FEATURES, 1))
                self.add_module(f"al{i}", nn.Conv2d(heatmaps, FEATURES, 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        """Heatmaps of every stack.

        Args:
            x: (B, 3, 256, 256) float32 BGR in [0, 1] (see `preprocess`).

        Returns:
            `NUM_STACKS` tensors (B, num_landmarks + 1, 64, 64); the last stack's are the prediction and its
            last channel is the boundary map.
        """
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        features = self.conv4(self.conv3(x))
        outputs: list[Tensor] = []
        heatmaps: Tensor | None = None
        for i in range(self.num_stacks):
            hidden = self.get_submodule(f"top_m_{i}")(self.get_submodule(f"m{i}")(features, heatmaps))
            hidden = F.relu(self.get_submodule(f"bn_end{i}")(self.get_submodule(f"conv_last{i}")(hidden)))
            heatmaps = self.get_submodule(f"l{i}")(hidden)
            outputs.append(heatmaps)
            if i < self.num_stacks - 1:
                back = self.get_submodule(f"bl{i}")(hidden)
                # Summed left to right as upstream does, so float32 results match it bit for bit.
                features = features + back + self.get_submodule(f"al{i}")(heatmaps)
        return outputs


def preprocess(crops_rgb: Sequence[np.ndarray], device: torch.device | str = "cpu") -> Tensor:
    """Face crops (h, w, 3) uint8 RGB of any sizes -> (B, 3, 256, 256) float32 BGR in [0, 1].

    Bilinear ``cv2.resize`` of the uint8 crop, then channels flipped to BGR and divided by 255, as upstream.
    """
    size = (INPUT_SIZE, INPUT_SIZE)
    resized = [cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR) for crop in crops_rgb]
    batch = np.ascontiguousarray(np.stack(resized)[..., ::-1].transpose(0, 3, 1, 2))
    return torch.from_numpy(batch).to(device).float().div_(255.0)


def decode_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    """One face's (N, H, W) heatmaps -> (N, 2) float64 points (x, y) in heatmap pixels, upstream's rule.

    Each point is the arg-max cell + 0.5, moved a quarter cell along x and along y towards the larger of its
    two neighbours (by the sign of their difference). Upstream quirks kept for exactness: neighbours are read
    in the flattened map, so x neighbours wrap across rows (and index -1 wraps to the last cell); and if *any*
    point's lower neighbour would fall past the last cell, every point uses the last cell as its lower
    neighbour (likewise the first cell as upper neighbour when any flat index - W <= 0). One deliberate
    change: an arg-max in the very last cell (upstream: IndexError) uses itself as its right neighbour.
    """
    count, height, width = heatmaps.shape
    cells = height * width
    flat = heatmaps.reshape(count, cells)
    index = flat.argmax(axis=1)
    points = np.stack([index % width, index // width], axis=1).astype(np.float64)
    rows = np.arange(count)
    right = flat[rows, np.minimum(index + 1, cells - 1)]
    left = flat[rows, index - 1]
    below = flat[:, cells - 1] if np.any(index + width >= cells) else flat[rows, index + width]
    above = flat[:, 0] if np.any(index - width <= 0) else flat[rows, index - width]
    step = np.sign(np.stack([right - left, below - above], axis=1)) * 0.25
    return points + step + 0.5


def landmarks_98_to_68(points98: np.ndarray) -> np.ndarray:
    """(98, 2) WFLW points -> (68, 2) float32 points in the iBUG 68 layout (facexlib's table and dtype)."""
    first = np.array([pair[0] for pair in LANDMARKS_98_TO_68])
    second = np.array([pair[-1] for pair in LANDMARKS_98_TO_68])
    return ((points98[first] + points98[second]) / 2).astype(np.float32)


def predict_landmarks98(
    net: FAN, crops_rgb: Sequence[np.ndarray], device: torch.device | str | None = None
) -> list[np.ndarray]:
    """98 landmarks per face crop, (98, 2) float64 (x, y) in that crop's pixels.

    Args:
        net: AWing FAN with weights loaded, in eval mode.
        crops_rgb: face crops (h, w, 3) uint8 RGB, h and w >= 1; all run as one batch.
        device: where to run; defaults to the device of ``net``.
    """
    if not crops_rgb:
        return []
    device = device if device is not None else next(net.parameters()).device
    with torch.inference_mode():
        heatmaps = net(preprocess(crops_rgb, device))[-1][:, :-1].float().cpu().numpy()
    result = []
    for crop, maps in zip(crops_rgb, heatmaps, strict=True):
        height, width = crop.shape[:2]
        result.append(decode_heatmaps(maps) * (width / HEATMAP_SIZE, height / HEATMAP_SIZE))
    return result
