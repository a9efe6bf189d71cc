"""MuseTalk's face box from the 68 DWPose landmarks, or else the S3FD box (``get_landmark_and_bbox``).

The box spans the landmarks horizontally and down to the lowest one; its top lies as far above landmark 29
(the nose bridge, 0-based) as the lowest landmark lies below it, clipped at the frame's top. Landmarks are
truncated to integers first (``astype(int32)``: -0.7 becomes 0, -1.3 becomes -1). When that box is empty or
starts left of the frame (x1 < 0), the S3FD box is used as it is. A frame where S3FD finds no face gets no
box, whatever the landmarks say (the official code records the placeholder ``(0.0, 0.0, 0.0, 0.0)``); so
does a frame whose S3FD box is needed but empty (clipped at 0 from a detection left of or above the frame),
which the official code would crash on when resizing the generated face to it.

``bbox_shift`` (MuseTalk 1.0 only; 1.5 always passes 0) moves landmark 29 down by that many pixels before
anything is measured, so it also counts when taking the lowest landmark, as the official in-place edit does.
The official "Manually adjust range" hint is not reproduced.

`detect_face_boxes` runs the whole step over frames: S3FD first, then DWPose only on the frames where S3FD
found a face (the official code runs DWPose on every frame; the boxes are the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from lipsync_kit.s3fd import FaceDetector

    from .dwpose import DWPose

__all__ = ["HALF_FACE_LANDMARK", "FaceBox", "detect_face_boxes", "face_box", "landmark_box"]

HALF_FACE_LANDMARK: Final = 29  # nose bridge point whose height splits the face box in half


class FaceBox(NamedTuple):
    """A face box in frame pixels, (x1, y1) inclusive, (x2, y2) exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int


def landmark_box(landmarks: np.ndarray, bbox_shift: int = 0) -> FaceBox | None:
    """The box built from (68, 2) landmarks, or None when it is empty or starts left of the frame."""
    points = np.asarray(landmarks).astype(np.int32)  # truncation toward zero, as the official cast
    points[HALF_FACE_LANDMARK, 1] += bbox_shift
    half_face_y = int(points[HALF_FACE_LANDMARK, 1])
    x1, x2 = int(points[:, 0].min()), int(points[:, 0].max())
    y2 = int(points[:, 1].max())
    y1 = max(0, half_face_y - (y2 - half_face_y))
    if y2 - y1 <= 0 or x2 - x1 <= 0 or x1 < 0:
        return None
    return FaceBox(x1, y1, x2, y2)


def face_box(
    landmarks: np.ndarray, s3fd_box: tuple[int, int, int, int] | None, bbox_shift: int = 0
) -> FaceBox | None:
    """The official face box of one frame: None without an S3FD face, else the landmark box or S3FD's."""
    if s3fd_box is None:
        return None
    if (box := landmark_box(landmarks, bbox_shift)) is not None:
        return box
    fallback = FaceBox(*map(int, s3fd_box))
    return fallback if fallback.x2 > fallback.x1 and fallback.y2 > fallback.y1 else None


def detect_face_boxes(
    frames_bgr: Sequence[np.ndarray],
    dwpose: DWPose,
    detector: FaceDetector,
    bbox_shift: int = 0,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[FaceBox | None]:
    """MuseTalk's ``get_landmark_and_bbox`` over frames of one size: per frame its face box or None.

    ``progress(done, total)`` is called after each batch of frames (S3FD and DWPose both done for it).
    """
    boxes: list[FaceBox | None] = []
    for start in range(0, len(frames_bgr), batch_size):
        batch = frames_bgr[start : start + batch_size]
        s3fd_boxes = detector.detect(batch, batch_size=batch_size)
        with_face = [i for i, box in enumerate(s3fd_boxes) if box is not None]
        landmarks = dwpose.landmarks_batch([batch[i] for i in with_face], batch_size=batch_size)
        batch_boxes: list[FaceBox | None] = [None] * len(batch)
        for index, points in zip(with_face, landmarks, strict=True):
            batch_boxes[index] = face_box(points, s3fd_boxes[index], bbox_shift)
        boxes.extend(batch_boxes)
        if progress is not None:
            progress(len(boxes), len(frames_bgr))
    return boxes
