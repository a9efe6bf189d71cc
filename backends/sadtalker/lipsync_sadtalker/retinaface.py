"""RetinaFace face detector, ResNet-50 variant (Deng et al., "RetinaFace: Single-stage Dense Face
Localisation in the Wild", CVPR 2020), as packaged by facexlib and called by SadTalker's crop stage.

Matches facexlib ``detection/retinaface.py``, ``retinaface_net.py`` and ``retinaface_utils.py`` (MIT; itself
from biubug6/Pytorch_Retinaface): module names equal the keys of ``detection_Resnet50_Final.pth`` once a
leading ``module.`` is stripped, so that file loads with ``strict=True``. Pre- and post-processing follow
facexlib's ``RetinaFace.detect_faces`` with the arguments SadTalker passes (``conf_threshold=0.97``,
``nms_threshold=0.4``, ``use_origin_size=True``, i.e. no rescaling): BGR minus the Caffe means, two square
priors per feature cell at strides 8/16/32, SSD decoding with variances (0.1, 0.2), a score threshold and
greedy NMS.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MEAN_BGR",
    "MIN_SIZES",
    "NMS_IOU",
    "SCORE_THRESHOLD",
    "STEPS",
    "VARIANCES",
    "Detections",
    "RetinaFace",
    "decode_boxes",
    "decode_landmarks",
    "detect",
    "nms",
    "postprocess",
    "preprocess",
    "priors",
]

MEAN_BGR: Final = (104.0, 117.0, 123.0)  # Caffe ImageNet means, subtracted from BGR pixel values in [0, 255]
STEPS: Final = (8, 16, 32)  # stride of each detection level (ResNet layer2, layer3, layer4)
MIN_SIZES: Final = ((16, 32), (64, 128), (256, 512))  # square prior sides in pixels, two per cell and level
VARIANCES: Final = (0.1, 0.2)  # SSD variances for centre and log-size offsets
SCORE_THRESHOLD: Final = 0.97  # SadTalker's confidence threshold (facexlib's own default is 0.8)
NMS_IOU: Final = 0.4  # facexlib default: a box is dropped when it overlaps a better one by more than this
FPN_CHANNELS: Final = 256
RESNET50_LAYERS: Final = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride)
BOTTLENECK_EXPANSION: Final = 4


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv without bias then BatchNorm, keyed ``0.*`` / ``1.*`` as facexlib's ``conv_bn*`` helpers."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(out_ch)
    )


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 v1.5 block: 1x1, 3x3 (carries the stride), 1x1 x4, identity or projection."""

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = _conv_bn(in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet50Body(nn.Module):
    """ResNet-50 up to ``layer4`` (no pooling head); returns the layer2, layer3 and layer4 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_ch = 64
        for index, (width, blocks, stride) in enumerate(RESNET50_LAYERS, start=1):
            layer = []
            for block in range(blocks):
                layer.append(Bottleneck(in_ch, width, stride if block == 0 else 1))
                in_ch = width * BOTTLENECK_EXPANSION
            self.add_module(f"layer{index}", nn.Sequential(*layer))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, padding=1)
        x = self.layer1(x)
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    """Top-down feature pyramid: 1x1 laterals, nearest upsampling, 3x3 merges; ReLU everywhere.

    facexlib uses ``LeakyReLU(0)`` here, which is ReLU (up to the sign of zero).
    """

    def __init__(self, in_channels: tuple[int, int, int], out_ch: int) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out_ch, 1)
        self.output2 = _conv_bn(in_channels[1], out_ch, 1)
        self.output3 = _conv_bn(in_channels[2], out_ch, 1)
        self.merge1 = _conv_bn(out_ch, out_ch, 3)
        self.merge2 = _conv_bn(out_ch, out_ch, 3)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        p3 = F.relu(self.output1(feats[0]))
        p4 = F.relu(self.output2(feats[1]))
        p5 = F.relu(self.output3(feats[2]))
        p4 = F.relu(self.merge2(p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest")))
        p3 = F.relu(self.merge1(p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest")))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches, concatenated.

    Attribute names follow the checkpoint, including the lower-case ``x`` of ``conv7x7_3``.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        quarter = out_ch // 4
        self.conv3X3 = _conv_bn(in_ch, out_ch // 2, 3)
        self.conv5X5_1 = _conv_bn(in_ch, quarter, 3)
        self.conv5X5_2 = _conv_bn(quarter, quarter, 3)
        self.conv7X7_2 = _conv_bn(quarter, quarter, 3)
        self.conv7x7_3 = _conv_bn(quarter, quarter, 3)

    def forward(self, x: Tensor) -> Tensor:
        branch5_1 = F.relu(self.conv5X5_1(x))
        branch7_2 = F.relu(self.conv7X7_2(branch5_1))
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(branch5_1), self.conv7x7_3(branch7_2)], dim=1)
        return F.relu(out)


class Head(nn.Module):
    """A 1x1 convolution predicting ``values`` numbers for each of ``anchors`` priors per feature cell."""

    def __init__(self, in_ch: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_ch, anchors * values, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, H * W * anchors, values), cell-major (row, column, anchor) like `priors`."""
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """ResNet-50 body, FPN, three SSH modules and per-level class / box / five-point landmark heads."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ResNet50Body()
        widths = tuple(width * BOTTLENECK_EXPANSION for width, _, _ in RESNET50_LAYERS[1:])
        self.fpn = FPN(widths, FPN_CHANNELS)  # type: ignore[arg-type]
        self.ssh1 = SSH(FPN_CHANNELS, FPN_CHANNELS)
        self.ssh2 = SSH(FPN_CHANNELS, FPN_CHANNELS)
        self.ssh3 = SSH(FPN_CHANNELS, FPN_CHANNELS)
        anchors = len(MIN_SIZES[0])
        self.ClassHead = nn.ModuleList(Head(FPN_CHANNELS, anchors, 2) for _ in STEPS)
        self.BboxHead = nn.ModuleList(Head(FPN_CHANNELS, anchors, 4) for _ in STEPS)
        self.LandmarkHead = nn.ModuleList(Head(FPN_CHANNELS, anchors, 10) for _ in STEPS)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw predictions for every prior.

        Args:
            x: (B, 3, H, W) float32, BGR pixel values in [0, 255] minus `MEAN_BGR` (see `preprocess`).

        Returns:
            ``loc`` (B, N, 4) box offsets (dcx, dcy, dw, dh), ``scores`` (B, N, 2) softmax probabilities
            (background, face), ``landmarks`` (B, N, 10) five-point offsets; N priors in `priors` order.
        """
        feats = self.fpn(self.body(x))
        feats = [self.ssh1(feats[0]), self.ssh2(feats[1]), self.ssh3(feats[2])]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, F.softmax(logits, dim=-1), landmarks


# ------------------------------------------------------------------------------ pre / post-processing


class Detections(NamedTuple):
    """Faces in one image after NMS, highest score first, in input-image pixels (not clipped)."""

    boxes: np.ndarray  # (M, 4) float32 (x1, y1, x2, y2)
    scores: np.ndarray  # (M,) float32 face probability
    landmarks: np.ndarray  # (M, 5, 2) float32: eye, eye, nose tip, mouth corner, mouth corner (x, y)


def preprocess(image_rgb: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 BGR minus `MEAN_BGR`.

    RetinaFace was trained on BGR (OpenCV) images. SadTalker passes its RGB array unchanged on the first
    detection (a channel-order bug); we always convert. The result is a channels-last view, the layout
    facexlib feeds the network (a transposed NumPy array), so the convolutions run the same kernels.
    """
    x = torch.from_numpy(np.ascontiguousarray(image_rgb[..., ::-1])).to(device)
    x = x.float().sub_(torch.tensor(MEAN_BGR, device=x.device))
    return x.permute(2, 0, 1).unsqueeze(0)


@lru_cache(maxsize=8)
def _priors_cpu(height: int, width: int) -> Tensor:
    rows = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = -(-height // step), -(-width // step)  # ceil: the feature map size of a stride-`step` level
        # float64 in facexlib's operation order, then float32, so the priors are bit-identical to upstream's.
        centre_y = (np.arange(fh) + 0.5) * step / height
        centre_x = (np.arange(fw) + 0.5) * step / width
        cy, cx = np.meshgrid(centre_y, centre_x, indexing="ij")
        for_cell = [
            np.stack([cx, cy, np.full_like(cx, size / width), np.full_like(cy, size / height)], axis=-1)
            for size in sizes
        ]
        rows.append(np.stack(for_cell, axis=2).reshape(-1, 4))
    return torch.from_numpy(np.concatenate(rows).astype(np.float32))


def priors(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(N, 4) float32 priors (cx, cy, w, h) relative to the image size, ordered level, row, column, size."""
    return _priors_cpu(height, width).to(device)


def decode_boxes(loc: Tensor, prior: Tensor) -> Tensor:
    """(N, 4) offsets and priors -> (N, 4) boxes (x1, y1, x2, y2) relative to the image size.

    Operation order as facexlib's ``decode``, so float32 results are bit-identical.
    """
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    top_left = centre - size / 2
    return torch.cat([top_left, size + top_left], dim=1)


def decode_landmarks(offsets: Tensor, prior: Tensor) -> Tensor:
    """(N, 10) offsets and priors -> (N, 5, 2) points (x, y) relative to the image size."""
    return prior[:, None, :2] + offsets.reshape(-1, 5, 2) * VARIANCES[0] * prior[:, None, 2:]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Greedy NMS as ``torchvision.ops.nms``: areas without "+1", a box is dropped when its IoU with a kept
    one is above ``iou_threshold``; float32 arithmetic in torchvision's operation order.

    Exact score ties keep the lower index first (torchvision's order for ties is unspecified).

    Args:
        boxes: (K, 4) float32 (x1, y1, x2, y2).
        scores: (K,) float32.

    Returns:
        (M,) int64 indices of the kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[order].T
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :]), 0)
        h = np.maximum(np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :]), 0)
        iou = w * h / (areas[i] + areas[i + 1 :] - w * h)
        alive[i + 1 :] &= iou.astype(np.float64) <= iou_threshold  # torchvision compares float IoU as double
    return order[np.asarray(keep, dtype=np.int64)]


def postprocess(
    loc: Tensor,
    scores: Tensor,
    landmarks: Tensor,
    image_hw: tuple[int, int],
    score_threshold: float = SCORE_THRESHOLD,
    nms_threshold: float = NMS_IOU,
) -> Detections:
    """Decode one image's raw outputs (N, 4), (N, 2), (N, 10) into `Detections` in pixels.

    Only priors scoring strictly above ``score_threshold`` are decoded (upstream decodes all, then filters:
    the same rows). The comparison is in float32, as upstream's NumPy / torch comparison with a Python float.
    """
    height, width = image_hw
    face = scores[:, 1]
    index = torch.nonzero(face > torch.tensor(score_threshold, dtype=face.dtype)).squeeze(1)
    prior = priors(height, width, loc.device)[index]
    scale = torch.tensor([width, height] * 2, dtype=torch.float32, device=loc.device)
    boxes = (decode_boxes(loc[index], prior) * scale).cpu().numpy()
    points = (decode_landmarks(landmarks[index], prior) * scale[:2]).cpu().numpy()
    face_np = face[index].cpu().numpy()
    keep = nms(boxes, face_np, nms_threshold)
    return Detections(boxes[keep], face_np[keep], points[keep])


def detect(
    net: RetinaFace,
    image_rgb: np.ndarray,
    score_threshold: float = SCORE_THRESHOLD,
    nms_threshold: float = NMS_IOU,
) -> Detections:
    """All faces in one (H, W, 3) uint8 RGB image at its own size (facexlib's ``use_origin_size=True``)."""
    device = next(net.parameters()).device
    with torch.inference_mode():
        loc, scores, landmarks = net(preprocess(image_rgb, device))
        image_hw = image_rgb.shape[:2]
        return postprocess(loc[0], scores[0], landmarks[0], image_hw, score_threshold, nms_threshold)
