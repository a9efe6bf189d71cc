"""One person through a whole video when a frame holds several faces (``--face-index``, ``--face-at``).

The person is chosen by the rule in the first frame that shows faces: the N-th face counted from the
left, or the face under a point (else the one whose centre is nearest to it). From then on the same
person is followed: within a shot by box overlap with the previous frame, and across a scene cut by
appearance (the colour histogram of the face last seen). A frame where the person is not found has
no face: it passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

__all__ = ["FacePicker", "FaceRule"]

MIN_OVERLAP: Final = 0.2  # IoU with the previous frame's box that still counts as the same face
HIST_BINS: Final = (8, 8, 8)  # BGR histogram of a face crop, compared across cuts


@dataclass(frozen=True)
class FaceRule:
    """How to pick the person: ``index`` from the left (0-based), or the face at ``point`` (x, y)."""

    index: int | None = None
    point: tuple[float, float] | None = None

    def pick(self, boxes: np.ndarray) -> int | None:
        """Row of ``boxes`` (M, 4+) x1, y1, x2, y2 the rule picks, or None (too few faces)."""
        if self.point is not None:
            x, y = self.point
            inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
            if inside.any():  # the smallest box under the point: the face, not one around it
                areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                return int(np.flatnonzero(inside)[areas[inside].argmin()])
            centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
            return int(np.hypot(centres[:, 0] - x, centres[:, 1] - y).argmin())
        order = np.argsort(boxes[:, 0], kind="stable")
        index = self.index or 0
        return int(order[index]) if index < len(order) else None


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _signature(frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    height, width = frame.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(box[2])), min(height, int(box[3]))
    if x2 <= x1 or y2 <= y1:
        return None
    hist = cv2.calcHist([frame[y1:y2, x1:x2]], [0, 1, 2], None, list(HIST_BINS), [0, 256] * 3)
    return cv2.normalize(hist, hist).flatten()


class FacePicker:
    """Feed it every frame's detections in order; it answers with the chosen person's box or None."""

    def __init__(self, rule: FaceRule) -> None:
        self.rule = rule
        self._last: np.ndarray | None = None  # the person's last box (x1, y1, x2, y2)
        self._signature: np.ndarray | None = None

    def choose(
        self, frame: np.ndarray, detections: np.ndarray, cut: bool
    ) -> tuple[int, int, int, int] | None:
        """The person's box in this frame as the detector API gives boxes (clipped at 0, truncated).

        Args:
            frame: (H, W, 3) uint8 BGR, the frame the detections are from.
            detections: (M, 5) x1, y1, x2, y2, score.
            cut: the frame starts a new shot.
        """
        if len(detections) == 0:
            return None
        boxes = detections[:, :4].astype(np.float64)
        if self._last is None:
            row = self.rule.pick(boxes)
        elif cut:
            row = self._by_appearance(frame, boxes)
        else:
            overlaps = _iou(self._last, boxes)
            row = int(overlaps.argmax()) if overlaps.max() >= MIN_OVERLAP else None
        if row is None:
            return None
        self._last = boxes[row]
        self._signature = _signature(frame, boxes[row])
        return tuple(int(v) for v in np.maximum(boxes[row], 0))  # type: ignore[return-value]

    def _by_appearance(self, frame: np.ndarray, boxes: np.ndarray) -> int | None:
        if self._signature is None:
            return self.rule.pick(boxes)
        scores = []
        for box in boxes:
            candidate = _signature(frame, box)
            scores.append(
                -1.0 if candidate is None else cv2.compareHist(self._signature, candidate, cv2.HISTCMP_CORREL)
            )
        return int(np.argmax(scores))
