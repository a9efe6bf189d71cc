"""Scene cuts, face tracks and mouth crops as syncnet_python's ``run_pipeline.py`` makes them.

* Scene cuts: PySceneDetect 0.5.1 ``ContentDetector`` (threshold 30, at least 15 frames between cuts) on
  frames subsampled by the library's width-based downscale factor.
* Tracks (``track_shot``): greedy IoU > 0.5 linking of detections within a shot, at most 25 frames apart;
  a track needs more than ``min_track`` detections and a mean box side above 100 px; its boxes are
  interpolated linearly over the frames without a detection.
* Crops (``crop_video``): box centre and half-size median-filtered over 13 frames, a square of side
  2 x 1.4 x half-size around the mouth-heavy part of the face (the box centre, widened by 40 %, extended
  down by 80 %), padded with grey 110 outside the frame, resized to 224 x 224.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import cv2
import numpy as np

from .offsets import median_filter

__all__ = [
    "CROP_SIZE",
    "SceneCutter",
    "Track",
    "crop_face",
    "downscale_factor",
    "scenes_from_cuts",
    "smooth_track",
    "track_faces",
]

SCENE_THRESHOLD: Final = 30.0  # mean HSV change between frames that makes a cut
MIN_SCENE_LEN: Final = 15  # frames between two cuts
DOWNSCALE_BY_WIDTH: Final = ((3200, 12), (2100, 8), (1700, 6), (1200, 5), (900, 4), (600, 3), (400, 2))
IOU_THRESHOLD: Final = 0.5
NUM_FAILED_DET: Final = 25  # frames a track may go without a detection
MIN_TRACK: Final = 100  # --min_track: detections a track needs (more than this)
MIN_FACE_SIZE: Final = 100  # --min_face_size: px, mean box width or height
CROP_SCALE: Final = 0.40  # --crop_scale
SMOOTH_KERNEL: Final = 13
CROP_SIZE: Final = 224
PAD_VALUE: Final = 110


def downscale_factor(width: int) -> int:
    """PySceneDetect 0.5.1's automatic subsampling factor for a frame width."""
    return next((factor for min_width, factor in DOWNSCALE_BY_WIDTH if width >= min_width), 1)


class SceneCutter:
    """Feeds frames one by one and collects the cut frame numbers (ContentDetector)."""

    def __init__(self, width: int) -> None:
        self.factor = downscale_factor(width)
        self.cuts: list[int] = []
        self.content: list[float] = []  # change score of every frame after the first
        self._last_hsv: np.ndarray | None = None
        self._frame = 0

    def add(self, frame_bgr: np.ndarray) -> None:
        small = frame_bgr[:: self.factor, :: self.factor] if self.factor > 1 else frame_bgr
        hsv = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_BGR2HSV).astype(np.int32)
        if self._last_hsv is not None:
            pixels = hsv.shape[0] * hsv.shape[1]
            deltas = [np.abs(hsv[..., c] - self._last_hsv[..., c]).sum() / float(pixels) for c in range(3)]
            score = sum(deltas) / 3.0
            self.content.append(score)
            if score >= SCENE_THRESHOLD and (not self.cuts or self._frame - self.cuts[-1] >= MIN_SCENE_LEN):
                self.cuts.append(self._frame)
        self._last_hsv = hsv
        self._frame += 1


def scenes_from_cuts(cuts: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    """Half-open frame ranges between the cuts (the whole video when there are none)."""
    return list(pairwise([0, *cuts, num_frames]))


@dataclass(frozen=True)
class Track:
    """One face over consecutive frames: ``frames`` (F,) int, ``boxes`` (F, 4) float64 x1, y1, x2, y2."""

    frames: np.ndarray
    boxes: np.ndarray


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / float(area_a + area_b - inter)


def _link_one(shot: list[list[tuple[int, np.ndarray]]]) -> list[tuple[int, np.ndarray]]:
    """One greedy pass over the shot, taking the faces it links out of ``shot``.

    Mirrors the official loop exactly, including its quirk: it removes a face from the list it is
    iterating over, so the face right after a taken one in the same frame is not looked at in this pass.
    """
    track: list[tuple[int, np.ndarray]] = []
    for faces in shot:
        i = 0
        while i < len(faces):
            frame, box = faces[i]
            if not track:
                track.append(faces.pop(i))
            elif frame - track[-1][0] <= NUM_FAILED_DET:
                if _iou(box, track[-1][1]) > IOU_THRESHOLD:
                    track.append(faces.pop(i))
            else:
                break
            i += 1
    return track


def track_faces(
    detections: Sequence[np.ndarray],
    start: int,
    *,
    min_track: int = MIN_TRACK,
    min_face_size: float = MIN_FACE_SIZE,
) -> list[Track]:
    """The face tracks of one shot.

    Args:
        detections: per frame of the shot, (K, 4+) boxes (x1, y1, x2, y2, ...) in pixels.
        start: the frame number of the shot's first frame.
    """
    shot = [
        [(start + k, np.asarray(d[:4], dtype=np.float64)) for d in dets] for k, dets in enumerate(detections)
    ]
    tracks: list[Track] = []
    while track := _link_one(shot):
        if len(track) <= min_track:
            continue
        frames = np.array([f for f, _ in track])
        boxes = np.stack([b for _, b in track])
        every = np.arange(frames[0], frames[-1] + 1)
        filled = np.stack([np.interp(every, frames, boxes[:, c]) for c in range(4)], axis=1)
        if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > min_face_size:
            tracks.append(Track(every, filled))
    return tracks


def smooth_track(track: Track) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median-filtered (13) crop centre x, centre y and half-size s per frame of the track."""
    boxes = track.boxes
    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    y = (boxes[:, 1] + boxes[:, 3]) / 2
    x = (boxes[:, 0] + boxes[:, 2]) / 2
    return tuple(median_filter(v, SMOOTH_KERNEL) for v in (x, y, s))  # type: ignore[return-value]


def crop_face(frame_bgr: np.ndarray, x: float, y: float, s: float) -> np.ndarray:
    """The 224 x 224 crop of one frame for a smoothed centre (x, y) and half-size s.

    Same pixels as the official crop from a frame padded by ``int(s * 1.8)`` on every side with 110,
    without padding the whole frame.
    """
    pad = int(s * (1 + 2 * CROP_SCALE))
    height, width = frame_bgr.shape[:2]
    my, mx = y + pad, x + pad
    top, bottom = int(my - s), min(int(my + s * (1 + 2 * CROP_SCALE)), height + 2 * pad)
    left, right = int(mx - s * (1 + CROP_SCALE)), min(int(mx + s * (1 + CROP_SCALE)), width + 2 * pad)
    top, left = max(top, 0), max(left, 0)
    face = np.full((max(bottom - top, 0), max(right - left, 0), 3), PAD_VALUE, dtype=np.uint8)
    src_top, src_bottom = max(top - pad, 0), min(bottom - pad, height)
    src_left, src_right = max(left - pad, 0), min(right - pad, width)
    if src_bottom > src_top and src_right > src_left:
        face[src_top + pad - top : src_bottom + pad - top, src_left + pad - left : src_right + pad - left] = (
            frame_bgr[src_top:src_bottom, src_left:src_right]
        )
    if face.size == 0:  # a box wholly outside the padded frame (the official code would crash)
        return np.full((CROP_SIZE, CROP_SIZE, 3), PAD_VALUE, dtype=np.uint8)
    return cv2.resize(face, (CROP_SIZE, CROP_SIZE))
