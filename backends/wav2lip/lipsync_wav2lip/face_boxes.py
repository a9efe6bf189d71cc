"""From detector boxes to Wav2Lip crop coordinates: padding, clipping and temporal smoothing.

Reproduces the box handling of Wav2Lip's ``inference.py:face_detect`` and ``get_smoothened_boxes`` exactly,
integer truncation and the short-clip quirk included, so crops land on the same pixels as the official code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

__all__ = ["DEFAULT_PADS", "SMOOTH_WINDOW", "crop_coords", "pad_and_clip", "smooth_boxes"]

DEFAULT_PADS: Final = (0, 10, 0, 0)  # (top, bottom, left, right) px: Wav2Lip's --pads, room for the chin
SMOOTH_WINDOW: Final = 5  # frames averaged per box (official T)


def pad_and_clip(
    boxes: Sequence[Sequence[int]] | np.ndarray,
    pads: tuple[int, int, int, int],
    frame_hw: tuple[int, int],
) -> np.ndarray:
    """Grow detector boxes by ``pads`` and clip them to the frame.

    Args:
        boxes: (N, 4) integer detector boxes (x1, y1, x2, y2), e.g. `lipsync_kit.s3fd.Box` values.
        pads: (top, bottom, left, right) pixels added around each box.
        frame_hw: (height, width) of the frames.

    Returns:
        (N, 4) int64 crop coordinates (y1, y2, x1, x2): ``frame[y1:y2, x1:x2]`` is the face crop.
    """
    x1, y1, x2, y2 = np.asarray(boxes, dtype=np.int64).reshape(-1, 4).T
    top, bottom, left, right = pads
    height, width = frame_hw
    columns = (y1 - top, y2 + bottom, x1 - left, x2 + right)
    lower, upper = (0, None, 0, None), (None, height, None, width)
    return np.stack([np.clip(c, lo, hi) for c, lo, hi in zip(columns, lower, upper, strict=True)], axis=1)


def smooth_boxes(coords: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Temporal smoothing of integer boxes exactly as Wav2Lip's ``get_smoothened_boxes``.

    Row ``i`` becomes the mean of rows ``i .. i + window - 1``, truncated to int; the last ``window - 1``
    rows take the mean of the last ``window`` rows instead, including rows already smoothed (the official
    loop works in place). With fewer than ``window`` rows the official slice start ``n - window`` is
    negative, so every row takes the mean of the last ``window - n`` rows (all rows when that is >= n):
    with 3 rows, each row becomes the mean of rows 1 and 2.

    Args:
        coords: (N, 4) integer boxes in any column order (each column is smoothed on its own).
        window: frames per mean.

    Returns:
        (N, 4) int64 smoothed copy.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    out = np.array(coords, dtype=np.int64).reshape(-1, 4)
    n = len(out)
    head = max(0, n - window + 1)  # rows whose forward window is still untouched original rows
    if head:
        csum = np.concatenate([np.zeros((1, 4), dtype=np.int64), np.cumsum(out, axis=0)])
        # Integer sums are exact, so sum / window equals the official float64 np.mean bit for bit.
        out[:head] = (csum[window : window + head] - csum[:head]) / window
    for i in range(head, n):
        out[i] = out[n - window :].mean(axis=0)
    return out


def crop_coords(
    boxes: Sequence[Sequence[int]] | np.ndarray,
    frame_hw: tuple[int, int],
    pads: tuple[int, int, int, int] = DEFAULT_PADS,
    smooth: bool = True,
) -> np.ndarray:
    """Detector boxes (N, 4) (x1, y1, x2, y2) -> (N, 4) int64 crop coordinates (y1, y2, x1, x2)."""
    coords = pad_and_clip(boxes, pads, frame_hw)
    return smooth_boxes(coords) if smooth else coords
