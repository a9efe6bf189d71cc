"""Pasting the generated mouth back into the frame (MuseTalk's ``blending.py``).

Around the face box a square crop 1.5× the box's longer side is cut from the frame (zero outside it). The
face parser's mask of that crop, resized back to the crop (PIL's default bicubic filter), is kept inside the
face box and below the crop's middle row only, then feathered with a Gaussian blur whose odd kernel is 5 %
of the crop's side in normal mode (``get_image``) and 10 % in the prepared-material mode of realtime
inference (``get_image_prepare_material``). The generated face, already resized to the box, is pasted into
the crop, and the crop into the frame through the blurred mask (PIL's 8-bit alpha paste).

The mask depends on the source frame and the box only, never on the generated face, so a pipeline can make
it once per distinct source frame (`blend_mask`, or `blend_masks` for many frames in parser batches) and
paste every generated face with it (`paste_face`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import cv2
import numpy as np
from PIL import Image

from .face_box import FaceBox
from .parsing import DEFAULT_BATCH, FaceParser, ParsingMode

__all__ = [
    "CROP_EXPAND",
    "NORMAL_BLUR_RATIO",
    "REALTIME_BLUR_RATIO",
    "BlendMask",
    "blend_face",
    "blend_mask",
    "blend_masks",
    "blur_kernel_size",
    "crop_box",
    "face_region_mask",
    "paste_face",
]

CROP_EXPAND: Final = 1.5  # crop half-side = half the box's longer side × this
UPPER_BOUNDARY_RATIO: Final = 0.5  # the mask is cleared above this fraction of the crop's height
NORMAL_BLUR_RATIO: Final = 0.05  # blur kernel / crop side in normal inference
REALTIME_BLUR_RATIO: Final = 0.1  # ... in realtime inference's prepared masks


class BlendMask(NamedTuple):
    """A feathered uint8 mask (crop-sized) and where the crop lies in the frame (x1, y1, x2, y2)."""

    mask: np.ndarray
    crop_box: tuple[int, int, int, int]


def crop_box(box: FaceBox, expand: float = CROP_EXPAND) -> tuple[int, int, int, int]:
    """The square crop around ``box``: floor-divided centre, half-side ``int(max(w, h) // 2 · expand)``."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    half = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return cx - half, cy - half, cx + half, cy + half


def blur_kernel_size(crop_width: int, ratio: float) -> int:
    """The odd Gaussian kernel side: ``int(ratio · width // 2 · 2) + 1`` (7 for 150 px at 5 %)."""
    return int(ratio * crop_width // 2 * 2) + 1


def _box_in_crop(box: FaceBox, crop: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return box.x1 - crop[0], box.y1 - crop[1], box.x2 - crop[0], box.y2 - crop[1]


def face_region_mask(parsed: np.ndarray, box: FaceBox, crop: tuple[int, int, int, int]) -> np.ndarray:
    """The crop-sized parser mask kept inside the face box and below the crop's middle row (not blurred)."""
    height, width = parsed.shape
    bx1, by1, bx2, by2 = _box_in_crop(box, crop)
    top = max(by1, int(height * UPPER_BOUNDARY_RATIO), 0)
    left = max(bx1, 0)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:by2, left:bx2] = parsed[top:by2, left:bx2]
    return mask


def blend_masks(
    frames_bgr: Sequence[np.ndarray],
    boxes: Sequence[FaceBox],
    parser: FaceParser,
    mode: ParsingMode = "jaw",
    blur_ratio: float = NORMAL_BLUR_RATIO,
    batch_size: int = DEFAULT_BATCH,
) -> list[BlendMask]:
    """`blend_mask` for many frames and their boxes, the parser running ``batch_size`` crops at a time."""
    crops = [crop_box(box) for box in boxes]
    crops_rgb = [
        Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])).crop(crop)
        for frame, crop in zip(frames_bgr, crops, strict=True)
    ]
    parsed_512 = parser.masks(crops_rgb, mode, batch_size)
    result = []
    for parsed, crop_rgb, box, crop in zip(parsed_512, crops_rgb, boxes, crops, strict=True):
        parsed_crop = np.asarray(Image.fromarray(parsed).resize(crop_rgb.size, Image.BICUBIC))
        size = blur_kernel_size(crop_rgb.size[0], blur_ratio)
        result.append(
            BlendMask(cv2.GaussianBlur(face_region_mask(parsed_crop, box, crop), (size, size), 0), crop)
        )
    return result


def blend_mask(
    frame_bgr: np.ndarray,
    box: FaceBox,
    parser: FaceParser,
    mode: ParsingMode = "jaw",
    blur_ratio: float = NORMAL_BLUR_RATIO,
) -> BlendMask:
    """The feathered mask for pasting a face into ``box`` of ``frame_bgr`` (see the module docstring)."""
    return blend_masks([frame_bgr], [box], parser, mode, blur_ratio)[0]


def paste_face(frame_bgr: np.ndarray, face_bgr: np.ndarray, box: FaceBox, blend: BlendMask) -> np.ndarray:
    """A copy of ``frame_bgr`` with ``face_bgr`` (box-sized) pasted into ``box`` through ``blend.mask``."""
    body = Image.fromarray(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
    crop = body.crop(blend.crop_box)
    crop.paste(Image.fromarray(np.ascontiguousarray(face_bgr[:, :, ::-1])), _box_in_crop(box, blend.crop_box))
    body.paste(crop, blend.crop_box[:2], Image.fromarray(blend.mask))
    return np.asarray(body)[:, :, ::-1].copy()


def blend_face(
    frame_bgr: np.ndarray, face_bgr: np.ndarray, box: FaceBox, parser: FaceParser, mode: ParsingMode = "jaw"
) -> np.ndarray:
    """Normal inference's ``get_image``: mask (5 % blur) and paste in one call."""
    return paste_face(frame_bgr, face_bgr, box, blend_mask(frame_bgr, box, parser, mode))
