"""Source-image cropping for SadTalker's five ``--preprocess`` modes (FFHQ-style face square).

Reproduces the official ``Preprocesser.align_face``/``crop`` and the crop branch of
``CropAndExtract.generate`` number for number, quirks included:

* the oriented face square comes from the eye centres and the mouth corners of the 68 landmarks;
* faces of 2048 px or more first shrink the whole frame by an integer factor (cv2 bilinear);
* a border of 10 % (at least 3 px) is added around the square's bounding box, clamped to the frame;
* the tight box ``quad`` is relative to that crop, offset by +0.5, and its bottom edge is clamped with
  the frame *width* (not height), as upstream does;
* float32/float64 arithmetic follows the reference run, so integer truncations land on the same pixel.

All boxes are ``(x1, y1, x2, y2)`` with exclusive ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, get_args

import cv2
import numpy as np

__all__ = [
    "PREPROCESS_MODES",
    "CropInfo",
    "PreprocessMode",
    "apply_crop",
    "crop_source",
    "plan_crop",
]

PreprocessMode = Literal["crop", "extcrop", "resize", "full", "extfull"]
PREPROCESS_MODES: Final[tuple[str, ...]] = get_args(PreprocessMode)

SHRINK_OUTPUT_SIZE: Final = 512  # official xsize: frames shrink once the face square is >= 4x this
MIN_BORDER: Final = 3  # px kept around the face square's bounding box
BORDER_FRACTION: Final = 0.1  # of the face square's side

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropInfo:
    """What a crop did to the source frames; enough to paste rendered frames back.

    Attributes:
        mode: the preprocess mode.
        image_size: (width, height) of the input frames.
        working_size: (width, height) the frames were shrunk to before cropping (huge faces only;
            otherwise equal to ``image_size``). ``crop_box`` and ``quad`` are in these pixels.
        shrink: the integer shrink factor (1 when no shrink happened).
        crop_box: (clx, cly, crx, cry), the face square's bounding box plus border; None for resize.
        quad: (lx, ly, rx, ry) floats, the tight face box relative to ``crop_box``; None for resize.
    """

    mode: str
    image_size: tuple[int, int]
    working_size: tuple[int, int]
    shrink: int
    crop_box: Box | None
    quad: tuple[float, float, float, float] | None

    @property
    def extended(self) -> bool:
        """Ext modes keep the whole bordered box instead of the tight face square."""
        return self.mode.startswith("ext")

    @property
    def tight_box(self) -> Box:
        """The tight face square in working pixels (the whole frame in resize mode)."""
        if self.crop_box is None or self.quad is None:
            return (0, 0, *self.working_size)
        clx, cly, _, _ = self.crop_box
        lx, ly, rx, ry = (int(v) for v in self.quad)
        return (clx + lx, cly + ly, clx + rx, cly + ry)

    @property
    def face_size(self) -> tuple[int, int]:
        """(width, height) of the tight face square; upstream's ``crop_info[0]`` (also for ext modes)."""
        x1, y1, x2, y2 = self.tight_box
        return (x2 - x1, y2 - y1)

    @property
    def region(self) -> Box:
        """Working-pixel box the cropped frame shows, as upstream's ``paste_pic`` computes it.

        Ext modes: the bordered crop box; crop/full: the tight square; resize: the whole frame.
        """
        if self.extended and self.crop_box is not None:
            return self.crop_box
        return self.tight_box

    @property
    def region_in_image(self) -> Box:
        """``region`` in input-frame pixels (differs from it only after a huge-face shrink).

        Upstream pastes at ``region`` even when the frame was shrunk, which misplaces such faces.
        """
        if self.shrink == 1:
            return self.region
        (w, h), (ww, wh) = self.image_size, self.working_size
        x1, y1, x2, y2 = self.region
        return (round(x1 * w / ww), round(y1 * h / wh), round(x2 * w / ww), round(y2 * h / wh))

    def as_official(self) -> tuple[tuple[int, int], Box | None, tuple[float, float, float, float] | None]:
        """Upstream's ``crop_info`` triple ``((w, h), crop, quad)``."""
        return (self.face_size, self.crop_box, self.quad)


def _face_square(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Corners (4, 2) of the oriented face square and its side length, in input pixels.

    Dtypes follow the reference (float32 landmarks, numpy 2 promotion): the eye/mouth statistics stay
    float32, the direction vectors are float64.
    """
    eye_left = landmarks[36:42].mean(axis=0)
    eye_right = landmarks[42:48].mean(axis=0)
    eye_mid = (eye_left + eye_right) * np.float32(0.5)
    eye_to_eye = eye_right - eye_left
    mouth_mid = (landmarks[48] + landmarks[54]) * np.float32(0.5)
    eye_to_mouth = mouth_mid - eye_mid

    # x: eye axis blended with the eye-to-mouth axis turned by -90 degrees, then scaled.
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]], dtype=np.float64)
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * np.float32(2.0), np.hypot(*eye_to_mouth) * np.float32(1.8))
    y = np.array([-x[1], x[0]])
    centre = eye_mid + eye_to_mouth * np.float32(0.1)
    corners = np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])
    return corners, float(np.hypot(*x) * 2)


def plan_crop(landmarks68: np.ndarray | None, image_size: tuple[int, int], mode: str) -> CropInfo:
    """Crop geometry for frames of ``image_size`` (width, height) from the first frame's 68 landmarks.

    Args:
        landmarks68: (68, 2) landmark x, y in input pixels (y down); unused (may be None) for resize.
        image_size: (width, height) of the frames.
        mode: one of ``PREPROCESS_MODES``.

    Returns:
        The crop description; ``apply_crop`` cuts frames with it.
    """
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown preprocess mode {mode!r}; expected one of {', '.join(PREPROCESS_MODES)}")
    width, height = image_size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {image_size}")
    if mode == "resize":
        return CropInfo(mode, (width, height), (width, height), 1, None, None)
    if landmarks68 is None:
        raise ValueError(f"preprocess mode {mode!r} needs the 68 face landmarks")
    landmarks = np.asarray(landmarks68, dtype=np.float32)
    if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"landmarks must be a finite (68, 2) array, got shape {landmarks.shape}")

    corners, side = _face_square(landmarks)
    shrink = math.floor(side / SHRINK_OUTPUT_SIZE * 0.5)
    if shrink > 1:
        working = (int(np.rint(width / shrink)), int(np.rint(height / shrink)))
        corners /= shrink
        side /= shrink
    else:
        shrink, working = 1, (width, height)
    work_w, work_h = working

    border = max(int(np.rint(side * BORDER_FRACTION)), MIN_BORDER)
    low, high = corners.min(axis=0), corners.max(axis=0)
    crop_box = (
        max(math.floor(low[0]) - border, 0),
        max(math.floor(low[1]) - border, 0),
        min(math.ceil(high[0]) + border, work_w),
        min(math.ceil(high[1]) + border, work_h),
    )
    # Corners relative to the crop, +0.5; each side from the two corners upstream reads.
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners - np.array(crop_box[:2]) + 0.5
    quad = (
        float(max(min(x0, x1), 0)),
        float(max(min(y0, y3), 0)),
        float(min(max(x2, x3), work_w)),
        float(min(max(y1, y2), work_w)),  # sic: upstream clamps the bottom edge with the width
    )
    return CropInfo(mode, (width, height), working, shrink, crop_box, quad)


def _cut(frame: np.ndarray, info: CropInfo) -> np.ndarray:
    """The part of one frame that the crop keeps, before the final square resize."""
    if info.crop_box is None or info.quad is None:
        return frame
    if info.shrink > 1:
        frame = cv2.resize(frame, info.working_size)  # upstream: cv2 default bilinear
    clx, cly, crx, cry = info.crop_box
    frame = frame[cly:cry, clx:crx]
    if not info.extended:
        lx, ly, rx, ry = (int(v) for v in info.quad)
        frame = frame[ly:ry, lx:rx]
    return frame


def apply_crop(frame_rgb: np.ndarray, info: CropInfo, size: int) -> np.ndarray:
    """Cut one (H, W, 3) uint8 frame as ``info`` says and resize it to (size, size, 3) (cv2 bilinear).

    Resize mode squashes the whole frame to the square.
    """
    height, width = frame_rgb.shape[:2]
    if (width, height) != info.image_size:
        raise ValueError(f"frame is {width}x{height}, the crop was planned for {info.image_size}")
    part = _cut(frame_rgb, info)
    if part.shape[0] < 1 or part.shape[1] < 1:
        raise ValueError(f"the face crop is empty ({info.mode}, box {info.region}); is the face in frame?")
    return np.ascontiguousarray(cv2.resize(part, (size, size)))


def crop_source(
    image_rgb: np.ndarray, landmarks68: np.ndarray | None, mode: str, size: int
) -> tuple[np.ndarray, CropInfo]:
    """Crop a source frame for the renderer: (size, size, 3) uint8 frame and the crop description.

    Args:
        image_rgb: (H, W, 3) uint8 RGB frame.
        landmarks68: (68, 2) landmarks in that frame (y down); may be None for resize mode.
        mode: one of ``PREPROCESS_MODES``.
        size: output side (256 or 512 for the released renderers).
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image_rgb.shape}")
    height, width = image_rgb.shape[:2]
    info = plan_crop(landmarks68, (width, height), mode)
    return apply_crop(image_rgb, info, size), info
