"""Wav2Lip crop boxes for a whole video from the kit's per-frame detections.

Each run of frames with a face, within one shot, is padded, clipped and smoothed on its own exactly as
the official ``face_detect`` does for a whole clip: a clip with a face in every frame and no cut is one
run, so its boxes are the official ones. Smoothing never averages across a cut or a face-less gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lipsync_kit.face_track import Detections, segments

from .face_boxes import pad_and_clip, smooth_boxes
from .pipeline import CropBox

__all__ = ["CropTrack", "crop_track", "fixed_track"]


@dataclass(frozen=True)
class CropTrack:
    """Per source frame the (y1, y2, x1, x2) crop, and whether the frame has a face to re-draw."""

    coords: np.ndarray  # (N, 4) int64
    has_face: np.ndarray  # (N,) bool

    def box(self, index: int) -> CropBox | None:
        if not self.has_face[index]:
            return None
        return tuple(int(v) for v in self.coords[index])  # type: ignore[return-value]

    @property
    def frames_without_face(self) -> int:
        return int((~self.has_face).sum())


def crop_track(
    detections: Detections, pads: tuple[int, int, int, int], frame_hw: tuple[int, int], *, smooth: bool
) -> CropTrack:
    """Pad, clip and (per run, see the module docstring) smooth the detector boxes.

    A box that the clipping leaves empty (a face at the frame edge) counts as no face.
    """
    coords = pad_and_clip(detections.boxes, pads, frame_hw)
    if smooth:
        for run in segments(detections.found, detections.cuts):
            coords[run] = smooth_boxes(coords[run])
    usable = (coords[:, 1] > coords[:, 0]) & (coords[:, 3] > coords[:, 2])
    return CropTrack(coords=coords, has_face=detections.found & usable)


def fixed_track(box: CropBox, frames: int) -> CropTrack:
    """``--box``: the same crop in every frame."""
    return CropTrack(coords=np.tile(np.asarray(box, np.int64), (frames, 1)), has_face=np.ones(frames, bool))
