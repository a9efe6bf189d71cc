"""Faces through a whole video: one detection pass, scene cuts, and the shots that box smoothing keeps to.

The pass streams frames through a detector in batches and keeps only small per-frame records (a box,
whether a face was found, whether a new shot starts), so it runs in bounded memory at any length. The
records are what `~lipsync_kit.detection_cache` stores; each backend turns them into crop boxes its own
way (Wav2Lip pads and smooths them over 5 frames) within the `segments` this module finds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from .face_pick import FacePicker

__all__ = [
    "CUT_THRESHOLD",
    "Detections",
    "ShotDetector",
    "detect_frames",
    "downscaled",
    "segments",
]

BoxDetector = Callable[[Sequence[np.ndarray]], Sequence[Sequence[int] | None]]  # frames -> (x1, y1, x2, y2)
AllDetector = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]  # frames -> (M, 5) x1, y1, x2, y2, score
ProgressFn = Callable[[int], None]

THUMB_SIZE: Final = (64, 36)  # (width, height) of the thumbnails that shots are compared on
HIST_BINS: Final = 16  # per colour channel
# Share of the picture whose colours changed between consecutive frames (histogram distance, 0..1)
# that marks a cut. Motion within a shot moves pixels but hardly changes the colour distribution
# (a panning talking head stays under 0.15); a cut to another shot changes most of it.
CUT_THRESHOLD: Final = 0.4


@dataclass(frozen=True)
class Detections:
    """Per source frame: the detector box, whether there was a face, whether a new shot starts there.

    ``boxes`` is (N, 4) int64 (x1, y1, x2, y2), zeros where ``found`` is False; ``cuts[0]`` is False.
    ``complete`` says the video ended within these N frames (a longer request can reuse them).
    """

    boxes: np.ndarray
    found: np.ndarray
    cuts: np.ndarray
    complete: bool

    def __len__(self) -> int:
        return len(self.found)

    def head(self, count: int) -> Detections:
        """The first ``count`` frames' records."""
        complete = self.complete and count >= len(self)
        return Detections(self.boxes[:count], self.found[:count], self.cuts[:count], complete)

    @property
    def frames_without_face(self) -> int:
        return int((~self.found).sum())


class ShotDetector:
    """Says for each frame in turn whether it starts a new shot (a hard cut), from colour histograms."""

    def __init__(self, threshold: float = CUT_THRESHOLD) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    @staticmethod
    def _histogram(frame_bgr: np.ndarray) -> np.ndarray:
        thumb = cv2.resize(frame_bgr, THUMB_SIZE, interpolation=cv2.INTER_AREA)
        channels = [
            np.bincount(thumb[:, :, c].ravel() // (256 // HIST_BINS), minlength=HIST_BINS) for c in range(3)
        ]
        return np.stack(channels).astype(np.float64) / (THUMB_SIZE[0] * THUMB_SIZE[1])

    def is_cut(self, frame_bgr: np.ndarray) -> bool:
        histogram = self._histogram(frame_bgr)
        previous, self._previous = self._previous, histogram
        if previous is None:
            return False
        changed = float(np.abs(histogram - previous).sum(axis=1).mean()) / 2  # 0: same colours, 1: all new
        return changed > self.threshold


def downscaled(detect: BoxDetector | AllDetector, scale: float) -> BoxDetector | AllDetector:
    """``detect`` run on frames resized by ``scale`` (area filter), its boxes scaled back to full size.

    Works for both detector kinds (one box or None per frame; an (M, 5) array per frame). Faster for
    large frames, and no longer the official boxes: the crops move by a few pixels.
    """
    if scale == 1.0:
        return detect

    def back(found: Sequence[int] | np.ndarray | None) -> tuple[int, ...] | np.ndarray | None:
        if found is None:
            return None
        if isinstance(found, np.ndarray):
            out = found.astype(np.float32, copy=True)
            out[:, :4] /= scale
            return out
        return tuple(round(v / scale) for v in found)

    def run(frames: Sequence[np.ndarray]) -> list:  # type: ignore[type-arg]
        small = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
        return [back(found) for found in detect(small)]

    return run


def detect_frames(
    frames: Iterable[np.ndarray],
    detect: BoxDetector | AllDetector,
    *,
    batch_size: int,
    expected: int | None = None,
    progress: ProgressFn | None = None,
    picker: FacePicker | None = None,
) -> Detections:
    """Run ``detect`` over every frame in batches and find the shots.

    Args:
        frames: the source frames in order (e.g. a `~lipsync_kit.video_source.VideoSource`).
        detect: batch of frames -> per frame a box (x1, y1, x2, y2) or None; with a ``picker``, per
            frame every detection as an (M, 5) array, from which the picker follows one person.
        expected: how many frames were asked for; fewer means the video ended (``complete``).
    """
    boxes: list[Sequence[int] | None] = []
    cuts: list[bool] = []
    shots = ShotDetector()
    batch: list[np.ndarray] = []

    def flush() -> None:
        found = detect(batch)
        if picker is None:
            boxes.extend(found)  # type: ignore[arg-type]
        else:
            first = len(boxes)
            for offset, (frame, every) in enumerate(zip(batch, found, strict=True)):
                boxes.append(picker.choose(frame, np.asarray(every), cuts[first + offset]))
        batch.clear()
        if progress is not None:
            progress(len(boxes))

    for frame in frames:
        cuts.append(shots.is_cut(frame))
        batch.append(frame)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    found = np.array([box is not None for box in boxes], dtype=bool)
    array = np.array([box if box is not None else (0, 0, 0, 0) for box in boxes], dtype=np.int64)
    return Detections(
        boxes=array.reshape(-1, 4),
        found=found,
        cuts=np.array(cuts, dtype=bool),
        complete=expected is None or len(boxes) < expected,
    )


def segments(found: np.ndarray, cuts: np.ndarray) -> list[slice]:
    """Runs of consecutive frames with a face, split at shot cuts: each is smoothed on its own."""
    runs: list[slice] = []
    start: int | None = None
    for index, (has_face, cut) in enumerate(zip(found.tolist(), cuts.tolist(), strict=True)):
        if start is not None and (not has_face or cut):
            runs.append(slice(start, index))
            start = None
        if has_face and start is None:
            start = index
    if start is not None:
        runs.append(slice(start, len(found)))
    return runs
