"""The ``--sheet`` picture: mouth crops over time, confidence per second, and the offset curve.

Drawn with OpenCV into a fixed 1200 x 560 canvas and written atomically as PNG.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from lipsync_kit.errors import BackendError, ErrorCode

from .evaluate import VideoResult
from .media import FPS

__all__ = ["SHEET_SIZE", "draw_sheet", "write_sheet"]

WIDTH: Final = 1200
HEIGHT: Final = 560
SHEET_SIZE: Final = (WIDTH, HEIGHT)  # (width, height) px
CROPS: Final = 10  # mouth crops in the strip
MARGIN: Final = 40
STRIP_TOP, STRIP_SIDE = 40, 112
CHART_H: Final = 150
SECONDS_TOP: Final = STRIP_TOP + STRIP_SIDE + 40
CURVE_TOP: Final = SECONDS_TOP + CHART_H + 40
INK, GRID, BAR, LINE, MARK = (30, 30, 30), (200, 200, 200), (180, 120, 40), (40, 90, 200), (30, 30, 220)
FONT: Final = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.5) -> None:
    cv2.putText(image, text, (x, y), FONT, scale, INK, 1, cv2.LINE_AA)


def _chart_frame(image: np.ndarray, top: int, title: str, lo: float, hi: float) -> None:
    cv2.rectangle(image, (MARGIN, top), (WIDTH - MARGIN, top + CHART_H), GRID, 1)
    _text(image, title, MARGIN, top - 8)
    _text(image, f"{hi:.2f}", 2, top + 10, 0.35)
    _text(image, f"{lo:.2f}", 2, top + CHART_H, 0.35)


def _y(value: float, top: int, lo: float, hi: float) -> int:
    return round(top + CHART_H - (value - lo) / ((hi - lo) or 1.0) * CHART_H)


def _bars(image: np.ndarray, values: Sequence[float | None]) -> None:
    known = [v for v in values if v is not None] or [0.0]
    lo, hi = min(0.0, *known), max(0.0, *known)
    _chart_frame(image, SECONDS_TOP, "confidence per second", lo, hi)
    step = (WIDTH - 2 * MARGIN) / max(len(values), 1)
    zero = _y(0.0, SECONDS_TOP, lo, hi)
    for i, value in enumerate(values):
        x0 = int(MARGIN + i * step + 1)
        x1 = max(x0 + 1, int(MARGIN + (i + 1) * step - 1))
        if value is None:
            _text(image, "-", x0, zero - 2, 0.35)
            continue
        cv2.rectangle(image, (x0, zero), (x1, _y(value, SECONDS_TOP, lo, hi)), BAR, -1)


def _curve(image: np.ndarray, offsets: Sequence[int], curve: Sequence[float], best: int) -> None:
    lo, hi = min(curve), max(curve)
    _chart_frame(image, CURVE_TOP, f"confidence by offset (frames; best {best:+d})", lo, hi)
    xs = np.linspace(MARGIN, WIDTH - MARGIN, len(offsets)).round().astype(int)
    points = np.array([[x, _y(c, CURVE_TOP, lo, hi)] for x, c in zip(xs, curve, strict=True)], dtype=np.int32)
    cv2.polylines(image, [points], False, LINE, 2, cv2.LINE_AA)
    for x, offset in zip(xs, offsets, strict=True):
        if offset % 5 == 0:
            _text(image, f"{offset:+d}", int(x) - 10, CURVE_TOP + CHART_H + 16, 0.35)
    x_best = int(xs[list(offsets).index(best)])
    cv2.line(image, (x_best, CURVE_TOP), (x_best, CURVE_TOP + CHART_H), MARK, 1)


def draw_sheet(result: VideoResult, title: str) -> np.ndarray:
    """(560, 1200, 3) uint8 BGR."""
    image = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    stats = result.to_stats()
    offset = f"offset {stats['offset_frames']:+d} frames ({stats['offset_ms']:+d} ms)"
    _text(
        image,
        f"{title}   LSE-D {stats['lse_d']:.3f}   LSE-C {stats['lse_c']:.3f}   {offset}",
        MARGIN,
        24,
        0.55,
    )
    main = max(result.tracks, key=lambda t: t.frames)
    step = (WIDTH - 2 * MARGIN) // CROPS
    for i, (crop, frame) in enumerate(zip(main.crops[:CROPS], main.crop_frames, strict=False)):
        x = MARGIN + i * step
        image[STRIP_TOP : STRIP_TOP + STRIP_SIDE, x : x + STRIP_SIDE] = cv2.resize(
            crop, (STRIP_SIDE, STRIP_SIDE)
        )
        _text(image, f"{frame / FPS:.1f} s", x, STRIP_TOP + STRIP_SIDE + 14, 0.35)
    _bars(image, result.per_second())
    _curve(image, main.scores.offsets, main.scores.curve, main.scores.offset)
    return image


def write_sheet(image: np.ndarray, path: Path) -> Path:
    """Write ``image`` as PNG at ``path`` atomically (temp file in the same folder, then rename)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise BackendError(ErrorCode.INTERNAL, "PNG encoding of the sheet failed")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".incomplete", dir=path.parent)
    except OSError as err:
        raise BackendError(ErrorCode.OUTPUT_UNWRITABLE, f"cannot write into {path.parent}: {err}") from err
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.tobytes())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path
