"""Pasting the generated mouth back into the frame (MuseTalk's ``blending.py``).

Around the face box a square crop 1.5× the box's longer side is cut from the frame (zero outside it). The
face parser's mask of that crop, resized back to the crop (PIL's default bicubic filter), is kept inside the
face box and below the crop's middle row only, then feathered with a Gaussian blur whose odd kernel is 5 %
of the crop's side in normal mode (``get_image``) and 10 % in the prepared-material mode of realtime
inference (``get_image_prepare_material``). The generated face, already resized to the box, is pasted into
the crop, and the crop into the frame through the blurred mask (PIL's 8-bit alpha paste, which treats the
three channels alike, so the frame stays BGR and only the crop's pixels are touched).

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
    "padded_crop",
    "paste_face",
]

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2) in pixels; a FaceBox is one

CROP_EXPAND: Final = 1.5  # crop half-side = half the box's longer side × this
UPPER_BOUNDARY_RATIO: Final = 0.5  # the mask is cleared above this fraction of the crop's height
NORMAL_BLUR_RATIO: Final = 0.05  # blur kernel / crop side in normal inference
REALTIME_BLUR_RATIO: Final = 0.1  # ... in realtime inference's prepared masks


class BlendMask(NamedTuple):
    """A feathered uint8 mask (crop-sized) and where the crop lies in the frame (x1, y1, x2, y2)."""

    mask: np.ndarray
    crop_box: Box


def crop_box(box: Box, expand: float = CROP_EXPAND) -> Box:
    """The square crop around ``box``: floor-divided centre, half-side ``int(max(w, h) // 2 · expand)``."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    half = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return cx - half, cy - half, cx + half, cy + half


def blur_kernel_size(crop_width: int, ratio: float) -> int:
    """The odd Gaussian kernel side: ``int(ratio · width // 2 · 2) + 1`` (7 for 150 px at 5 %)."""
    return int(ratio * crop_width // 2 * 2) + 1


def _box_in_crop(box: Box, crop: Box) -> Box:
    x1, y1, x2, y2 = box
    return x1 - crop[0], y1 - crop[1], x2 - crop[0], y2 - crop[1]


def _overlap(
    outer: Box, inner_hw: tuple[int, int], offset: tuple[int, int]
) -> tuple[slice, slice, slice, slice]:
    """Row and column slices of the part of ``outer`` (an image's own coordinates) that an image of size
    ``inner_hw`` placed at ``offset`` covers: (outer rows, outer cols, inner rows, inner cols)."""
    x1, y1, x2, y2 = outer
    ox, oy = offset
    left, top = max(x1, ox), max(y1, oy)
    right, bottom = min(x2, ox + inner_hw[1]), min(y2, oy + inner_hw[0])
    right, bottom = max(right, left), max(bottom, top)
    return (
        slice(top - y1, bottom - y1),
        slice(left - x1, right - x1),
        slice(top - oy, bottom - oy),
        slice(left - ox, right - ox),
    )


def padded_crop(frame: np.ndarray, crop: Box) -> np.ndarray:
    """``frame[y1:y2, x1:x2]`` of ``crop``, zero where the crop leaves the frame (as PIL's ``crop``)."""
    x1, y1, x2, y2 = crop
    out = np.zeros((y2 - y1, x2 - x1, *frame.shape[2:]), dtype=frame.dtype)
    rows, cols, frame_rows, frame_cols = _overlap(crop, frame.shape[:2], (0, 0))
    out[rows, cols] = frame[frame_rows, frame_cols]
    return out


def face_region_mask(parsed: np.ndarray, box: Box, crop: Box) -> np.ndarray:
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
    boxes: Sequence[Box],
    parser: FaceParser,
    mode: ParsingMode = "jaw",
    blur_ratio: float = NORMAL_BLUR_RATIO,
    batch_size: int = DEFAULT_BATCH,
) -> list[BlendMask]:
    """`blend_mask` for many frames and their boxes, the parser running ``batch_size`` crops at a time."""
    crops = [crop_box(box) for box in boxes]
    crops_rgb = [
        Image.fromarray(np.ascontiguousarray(padded_crop(frame, crop)[:, :, ::-1]))
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
    box: Box,
    parser: FaceParser,
    mode: ParsingMode = "jaw",
    blur_ratio: float = NORMAL_BLUR_RATIO,
) -> BlendMask:
    """The feathered mask for pasting a face into ``box`` of ``frame_bgr`` (see the module docstring)."""
    return blend_masks([frame_bgr], [box], parser, mode, blur_ratio)[0]


def paste_face(frame_bgr: np.ndarray, face_bgr: np.ndarray, box: Box, blend: BlendMask) -> np.ndarray:
    """A copy of ``frame_bgr`` with ``face_bgr`` (box-sized) pasted into ``box`` through ``blend.mask``."""
    crop = padded_crop(frame_bgr, blend.crop_box)
    bx1, by1, _, _ = _box_in_crop(box, blend.crop_box)
    crop_rows, crop_cols, face_rows, face_cols = _overlap(
        (0, 0, crop.shape[1], crop.shape[0]), face_bgr.shape[:2], (bx1, by1)
    )
    crop[crop_rows, crop_cols] = face_bgr[face_rows, face_cols]
    out = frame_bgr.copy()
    height, width = frame_bgr.shape[:2]
    rows, cols, crop_rows, crop_cols = _overlap((0, 0, width, height), crop.shape[:2], blend.crop_box[:2])
    region = Image.fromarray(np.ascontiguousarray(out[rows, cols]))
    region.paste(
        Image.fromarray(np.ascontiguousarray(crop[crop_rows, crop_cols])),
        (0, 0),
        Image.fromarray(np.ascontiguousarray(blend.mask[crop_rows, crop_cols])),
    )
    out[rows, cols] = np.asarray(region)
    return out


def blend_face(
    frame_bgr: np.ndarray, face_bgr: np.ndarray, box: Box, parser: FaceParser, mode: ParsingMode = "jaw"
) -> np.ndarray:
    """Normal inference's ``get_image``: mask (5 % blur) and paste in one call."""
    return paste_face(frame_bgr, face_bgr, box, blend_mask(frame_bgr, box, parser, mode))
