"""3DMM alignment (Deep3DFaceRecon preprocessing): a face crop to the 224x224 input of the recon net.

Five landmarks (eye centres, nose tip, mouth corners) are matched to the same five points of a standard
3D face with a least-squares affine projection; the scale and translation it yields resize the image
(PIL bicubic, integer-truncated size) and place a 224x224 window on it (zero fill outside). The numbers
``(W, H, s, tx, ty)`` travel on as the last three columns of SadTalker's 73-column coefficients.

Coordinates: landmark inputs are image pixels with y down; inside this module (as upstream) y points up,
``y' = H - 1 - y``, and ``ty`` is in those y-up pixels.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from functools import cache
from importlib.resources import files
from typing import Final

import numpy as np
from PIL import Image

__all__ = [
    "ALIGNED_SIZE",
    "TransParams",
    "align_for_recon",
    "aligned_landmarks",
    "fit_scale_translation",
    "five_points",
    "resize_and_crop",
    "standard_five_points",
    "standard_landmarks_3d",
    "to_y_up",
]

ALIGNED_SIZE: Final = 224
RESCALE_FACTOR: Final = 102.0  # target face scale in aligned pixels
_HALF: Final = ALIGNED_SIZE / 2
# 68-point indices averaged into each of the five points, in upstream's order.
_FIVE_POINT_GROUPS: Final = ((36, 39), (42, 45), (30,), (48,), (54,))


@dataclass(frozen=True)
class TransParams:
    """Where the aligned 224 window sits: source (width, height), scale and (tx, ty) (y-up pixels)."""

    width: float
    height: float
    scale: float
    tx: float
    ty: float

    def as_array(self) -> np.ndarray:
        """``(W, H, s, tx, ty)`` as float64, upstream's ``trans_params``."""
        return np.array(astuple(self), dtype=np.float64)


@cache
def standard_landmarks_3d() -> np.ndarray:
    """The 68 standard 3D landmarks (68, 3) float32 (x right, y up), read-only."""
    document = json.loads(files(__package__).joinpath("data", "standard_landmarks_3d.json").read_text())
    points = np.asarray(document["lm68_xyz"], dtype=np.float32)
    points.setflags(write=False)
    return points


def to_y_up(landmarks: np.ndarray, height: int) -> np.ndarray:
    """(N, 2) pixel landmarks with y down -> y up (``y' = height - 1 - y``), keeping their dtype."""
    return np.stack([landmarks[:, 0], height - 1 - landmarks[:, 1]], axis=1)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(68, D) landmarks -> (5, D): left-eye centre, right-eye centre, nose tip, mouth corners.

    Means are taken in the input dtype (float32 upstream).
    """
    return np.stack([landmarks[list(group)].mean(axis=0) for group in _FIVE_POINT_GROUPS])


@cache
def standard_five_points() -> np.ndarray:
    """The five standard 3D points (5, 3) float32, read-only."""
    points = five_points(standard_landmarks_3d())
    points.setflags(write=False)
    return points


def fit_scale_translation(points_2d: np.ndarray, points_3d: np.ndarray) -> tuple[float, float, float]:
    """Least-squares affine projection of ``points_3d`` (N, 3) onto ``points_2d`` (N, 2).

    Solves ``u = R1 . X + a``, ``v = R2 . X + b`` in float64 and returns the mean row norm
    ``(|R1| + |R2|) / 2`` with the translation ``(a, b)``.
    """
    n = len(points_3d)
    design = np.zeros((2 * n, 8))
    design[0::2, 0:3] = points_3d
    design[0::2, 3] = 1
    design[1::2, 4:7] = points_3d
    design[1::2, 7] = 1
    target = np.asarray(points_2d).reshape(2 * n).astype(np.float64)
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    scale = (np.linalg.norm(solution[0:3]) + np.linalg.norm(solution[4:7])) / 2
    return float(scale), float(solution[3]), float(solution[7])


def _window(params: TransParams) -> tuple[int, int, int, int]:
    """Resized (width, height) and the 224 window's top-left, each truncated toward zero as upstream."""
    w = int(params.width * params.scale)
    h = int(params.height * params.scale)
    left = int(w / 2 - _HALF + (params.tx - params.width / 2) * params.scale)
    top = int(h / 2 - _HALF + (params.height / 2 - params.ty) * params.scale)
    return w, h, left, top


def resize_and_crop(image_rgb: np.ndarray, params: TransParams) -> np.ndarray:
    """Resize by ``params.scale`` (PIL bicubic) and cut the 224x224 window; outside pixels are black."""
    w, h, left, top = _window(params)
    if w < 1 or h < 1:
        raise ValueError(f"alignment scale {params.scale:.4g} shrinks the image to nothing")
    resized = Image.fromarray(image_rgb).resize((w, h), resample=Image.Resampling.BICUBIC)
    return np.array(resized.crop((left, top, left + ALIGNED_SIZE, top + ALIGNED_SIZE)))


def aligned_landmarks(landmarks_y_up: np.ndarray, params: TransParams) -> np.ndarray:
    """Landmarks (N, 2) in y-up source pixels -> y-up pixels of the aligned 224 image (float64)."""
    w, h, _, _ = _window(params)
    points = np.asarray(landmarks_y_up, dtype=np.float64)
    shifted = np.stack(
        [points[:, 0] - params.tx + params.width / 2, points[:, 1] - params.ty + params.height / 2], axis=1
    )
    return shifted * params.scale - np.array([[w / 2 - _HALF, h / 2 - _HALF]])


def align_for_recon(image_rgb: np.ndarray, landmarks68: np.ndarray | None) -> tuple[np.ndarray, TransParams]:
    """Align a face crop for the 3DMM recon net.

    Args:
        image_rgb: (H, W, 3) uint8 RGB crop (the renderer's source frame, 256 or 512 px).
        landmarks68: (68, 2) landmarks in that crop (x, y down), or None when no face was found:
            upstream then places the standard face's five points over the whole frame.

    Returns:
        The (224, 224, 3) uint8 aligned image and the transform parameters.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image_rgb.dtype} {image_rgb.shape}")
    height, width = image_rgb.shape[:2]
    if landmarks68 is None:
        points = (standard_five_points()[:, :2] + 1) / 2 * np.array([width, height], dtype=np.float32)
    else:
        landmarks = np.asarray(landmarks68, dtype=np.float32)
        if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
            raise ValueError(f"landmarks must be a finite (68, 2) array, got shape {landmarks.shape}")
        points = five_points(to_y_up(landmarks, height))
    fit_scale, tx, ty = fit_scale_translation(points, standard_five_points())
    params = TransParams(float(width), float(height), RESCALE_FACTOR / fit_scale, tx, ty)
    return resize_and_crop(image_rgb, params), params
