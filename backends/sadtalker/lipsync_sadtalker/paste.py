"""Put rendered faces back into the full-resolution source frame (``--preprocess full`` / ``extfull``).

``poisson`` is the official paste-back: the rendered crop resized to its box and merged with OpenCV's
``seamlessClone`` (normal clone, all-white mask, centred on the box), a Poisson solve per frame on the CPU.
``blend`` (the default) resizes the same way and mixes with a feathered mask: no visible box edge, no
colour drift pulled in from the background, and a small fraction of the cost.
"""

from __future__ import annotations

from typing import Final, Literal

import cv2
import numpy as np

__all__ = ["PASTE_MODES", "Box", "FeatherMask", "clip_box", "paste_face"]

PasteMode = Literal["blend", "poisson"]
PASTE_MODES: Final[tuple[str, ...]] = ("blend", "poisson")
Box = tuple[int, int, int, int]  # x1, y1, x2, y2
FEATHER_FRACTION: Final = 0.08  # of the box's shorter side: width of the soft border


def clip_box(box: Box, width: int, height: int) -> Box:
    """``box`` limited to the frame (the official paste crashes when it leaves the image, issue #446)."""
    x1, y1, x2, y2 = box
    return (max(0, x1), max(0, y1), min(width, x2), min(height, y2))


class FeatherMask:
    """(H, W, 1) float32 weights: 1 inside, easing to 0 over a soft border; cached per box size."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._cache:
            border = max(1, round(min(height, width) * FEATHER_FRACTION))
            ramp_y = np.clip((np.minimum(np.arange(height), np.arange(height)[::-1]) + 0.5) / border, 0, 1)
            ramp_x = np.clip((np.minimum(np.arange(width), np.arange(width)[::-1]) + 0.5) / border, 0, 1)
            mask = np.outer(ramp_y, ramp_x).astype(np.float32)
            self._cache[key] = (mask * mask * (3 - 2 * mask))[:, :, None]  # smoothstep: no visible kink
        return self._cache[key]


def paste_face(
    frame: np.ndarray,
    face: np.ndarray,
    box: Box,
    mode: PasteMode = "blend",
    feather: FeatherMask | None = None,
) -> np.ndarray:
    """A copy of ``frame`` with ``face`` (the rendered crop, any size) resized into ``box``.

    Args:
        frame: (H, W, 3) uint8 full-resolution frame.
        face: (h, w, 3) uint8 rendered frame showing exactly the region ``box`` (same channel order).
        box: (x1, y1, x2, y2) in ``frame`` pixels; parts outside the frame are cut off.
        mode: ``blend`` or ``poisson`` (see the module docstring).
    """
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty paste box {box}")
    resized = cv2.resize(face, (x2 - x1, y2 - y1))
    cx1, cy1, cx2, cy2 = clip_box(box, width, height)
    if cx2 <= cx1 or cy2 <= cy1:
        return frame.copy()
    inner = resized[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
    if mode == "poisson":
        mask = np.full(inner.shape, 255, np.uint8)
        centre = ((cx1 + cx2) // 2, (cy1 + cy2) // 2)
        return cv2.seamlessClone(inner, frame, mask, centre, cv2.NORMAL_CLONE)
    weights = (feather or FeatherMask())(cy2 - cy1, cx2 - cx1)
    out = frame.copy()
    region = out[cy1:cy2, cx1:cx2].astype(np.float32)
    mixed = region + (inner.astype(np.float32) - region) * weights
    out[cy1:cy2, cx1:cx2] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out
