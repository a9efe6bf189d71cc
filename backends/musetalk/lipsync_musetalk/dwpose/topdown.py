"""Top-down input preparation for RTMPose, as mmpose's ``inference_topdown`` does it without a person box.

The whole frame is the box; it is padded by 1.25, widened or heightened to the model's 3:4 aspect ratio,
and warped onto the 288×384 input with an affine map (three point pairs, OpenCV's ``getAffineTransform``)
and bilinear ``warpAffine``, zero outside the frame. Facts from mmpose's ``bbox_xyxy2cs``,
``TopdownAffine._fix_aspect_ratio`` and ``get_warp_matrix`` (Apache-2.0).

OpenCV 4.x and 5.x give different ``warpAffine`` results (4.x rounds to a 1/32-pixel fixed-point grid, 5.x
interpolates in float); the official DWPose inputs are 4.x's.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["BOX_PADDING", "INPUT_SIZE", "BoxFrame", "box_frame", "normalise", "warp_to_input"]

INPUT_SIZE: Final = (288, 384)  # model input (width, height)
BOX_PADDING: Final = 1.25  # mmpose's GetBBoxCenterScale default
PIXEL_MEAN_RGB: Final = (123.675, 116.28, 103.53)  # ImageNet mean and std in 0..255 units
PIXEL_STD_RGB: Final = (58.395, 57.12, 57.375)


class BoxFrame(NamedTuple):
    """Where the model input sits in the frame: the box centre and its size (w, h), float32."""

    center: np.ndarray
    scale: np.ndarray

    def to_frame(self, points_input: np.ndarray) -> np.ndarray:
        """Map (..., 2) points from model-input pixels back to frame pixels (float64)."""
        return points_input / np.asarray(INPUT_SIZE) * self.scale + self.center - 0.5 * self.scale


def box_frame(box_xyxy: np.ndarray) -> BoxFrame:
    """The padded, aspect-fixed centre and scale of ``box_xyxy`` (x1, y1, x2, y2)."""
    box = np.asarray(box_xyxy, dtype=np.float32)
    center = (box[2:] + box[:2]) * np.float32(0.5)
    w, h = (box[2:] - box[:2]) * np.float32(BOX_PADDING)
    aspect = INPUT_SIZE[0] / INPUT_SIZE[1]
    scale = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h], dtype=np.float32)
    return BoxFrame(center, scale)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` turned 90° anticlockwise about ``b``: the third point that fixes an affine map."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=a.dtype)


def warp_matrix(frame: BoxFrame) -> np.ndarray:
    """The 2×3 float64 affine map from frame pixels to model-input pixels (no rotation)."""
    out_w, out_h = INPUT_SIZE
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    # mmpose 1.1 (the version MuseTalk pins) pairs the centres and the points half a box width above them;
    # later versions use the point to the left, which gives the same map up to float rounding.
    src[0] = frame.center
    src[1] = frame.center + np.array([0.0, -0.5 * frame.scale[0]])
    dst[0] = [0.5 * out_w, 0.5 * out_h]
    dst[1] = [0.5 * out_w, 0.5 * out_h - 0.5 * out_w]
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def warp_to_input(frame_bgr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The (384, 288, 3) uint8 BGR model input: bilinear warp, black outside the frame."""
    return cv2.warpAffine(frame_bgr, matrix, INPUT_SIZE, flags=cv2.INTER_LINEAR)


def normalise(warped_bgr: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 BGR -> (N, 3, H, W) float32 RGB, ImageNet mean/std removed."""
    batch = torch.from_numpy(np.ascontiguousarray(warped_bgr)).to(device)
    if batch.ndim == 3:
        batch = batch[None]
    rgb = batch.flip(-1).permute(0, 3, 1, 2).float()
    mean = torch.tensor(PIXEL_MEAN_RGB, device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD_RGB, device=rgb.device).view(1, 3, 1, 1)
    return (rgb - mean) / std
