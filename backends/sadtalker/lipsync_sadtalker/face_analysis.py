"""Face boxes and 68 landmarks for SadTalker's crop stage: RetinaFace, then AWing on the box, then 98 -> 68.

Reproduces SadTalker's ``Preprocesser.get_landmark`` / ``KeypointExtractor.extract_keypoint``
(``src/utils/croper.py``, ``src/face3d/extract_kp_videos_safe.py``) with these deliberate differences:

* RetinaFace always gets BGR. Upstream gives it the RGB array on the source image (a channel-order bug; its
  second pass, on PIL crops, converts correctly).
* Which face: upstream takes the highest-scoring detection. We take the largest box (the same face in a
  portrait), or the ``face_index``-th face counted left to right, so users can pick one in group photos.
* A box reaching past the left/top edge is clamped to the image before cropping (upstream slices with a
  negative start, which wraps around and usually crashes on an empty crop); detections whose clamped box is
  empty are dropped.
* No face is a `BackendError` with code ``no_face`` (upstream raises a string, itself a TypeError).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.errors import BackendError, ErrorCode

from .landmarks import FAN, landmarks_98_to_68, predict_landmarks98
from .retinaface import NMS_IOU, SCORE_THRESHOLD, RetinaFace, detect

__all__ = [
    "MISSING_LANDMARKS",
    "Box",
    "DetectedFace",
    "FaceAnalyzer",
    "crop_box",
    "is_missing",
    "select_face",
]

MISSING_LANDMARKS: Final = -1.0  # fill value of a frame without landmarks, as upstream (mean == -1 test)
NO_FACE_HINT: Final = (
    "use an image with a clearly visible, roughly frontal face that is not too small; drawings and heavily "
    "stylised faces are often not detected"
)

Box = tuple[float, float, float, float]  # (x1, y1, x2, y2) in image pixels


@dataclass(frozen=True)
class DetectedFace:
    """One RetinaFace detection in image pixels.

    Attributes:
        box: (x1, y1, x2, y2), not clipped to the image.
        score: face probability in (0, 1].
        points: five (x, y) points: eye, eye, nose tip, mouth corner, mouth corner (image left to right).
    """

    box: Box
    score: float
    points: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)

    @property
    def centre_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2


def crop_box(box: Box, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer crop upstream cuts for the landmark net: each coordinate truncated, then clamped."""
    height, width = image_hw
    x1, y1, x2, y2 = (int(v) for v in box)
    return max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)


def is_missing(landmarks: np.ndarray) -> bool:
    """True for a frame whose landmarks are the `MISSING_LANDMARKS` fill (upstream's ``mean == -1`` test)."""
    return bool(np.mean(landmarks) == MISSING_LANDMARKS)


def select_face(
    faces: Sequence[DetectedFace], face_index: int | None = None, *, what: str = "the image"
) -> DetectedFace:
    """The face to animate: the largest box, or the ``face_index``-th face counted from the left (0-based).

    Raises:
        BackendError: ``no_face`` when ``faces`` is empty; ``bad_option`` when ``face_index`` is out of range.
    """
    if not faces:
        raise BackendError(ErrorCode.NO_FACE, f"No face found in {what}.", NO_FACE_HINT)
    if face_index is None:
        return max(faces, key=lambda face: face.area)  # the first (best-scoring) of equal areas
    ordered = sorted(faces, key=lambda face: face.centre_x)
    if not -len(ordered) <= face_index < len(ordered):
        raise BackendError(
            ErrorCode.BAD_OPTION,
            f"Face index {face_index} asked for, but {len(ordered)} face(s) were found in {what}.",
            f"faces are counted from the left starting at 0; use a value from 0 to {len(ordered) - 1}",
        )
    return ordered[face_index]


class FaceAnalyzer:
    """RetinaFace and AWing on one device.

    Args:
        detector: RetinaFace with weights loaded.
        aligner: AWing FAN with weights loaded.
        device: where both run; defaults to the device of ``detector``.
        score_threshold: detection confidence threshold (SadTalker: 0.97).
    """

    def __init__(
        self,
        detector: RetinaFace,
        aligner: FAN,
        device: torch.device | str | None = None,
        score_threshold: float = SCORE_THRESHOLD,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(detector.parameters()).device
        self.detector = detector.to(self.device).eval()
        self.aligner = aligner.to(self.device).eval()
        self.score_threshold = score_threshold

    @classmethod
    def from_files(
        cls,
        detector_path: str | os.PathLike[str],
        aligner_path: str | os.PathLike[str],
        device: torch.device | str = "cpu",
    ) -> FaceAnalyzer:
        """Load ``detection_Resnet50_Final.pth`` and ``alignment_WFLW_4HG.pth`` (strict key match).

        Raises:
            BackendError: ``weights_missing`` or ``bad_checkpoint`` (see `lipsync_kit.checkpoints`).
        """
        detector, aligner = RetinaFace(), FAN()
        load_into(detector, load_state_dict_file(detector_path), source=str(detector_path))
        load_into(aligner, load_state_dict_file(aligner_path), source=str(aligner_path))
        return cls(detector, aligner, device)

    def detect_faces(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        """All faces above the score threshold in an (H, W, 3) uint8 RGB image, highest score first."""
        found = detect(self.detector, image_rgb, self.score_threshold, NMS_IOU)
        faces = []
        for box, score, points in zip(found.boxes, found.scores, found.landmarks, strict=True):
            x1, y1, x2, y2 = crop_box(tuple(box.tolist()), image_rgb.shape[:2])
            if x2 > x1 and y2 > y1:
                five = tuple((float(x), float(y)) for x, y in points.tolist())
                faces.append(DetectedFace(tuple(box.tolist()), float(score), five))
        return faces

    def landmarks68(self, image_rgb: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmarks (x, y) in image pixels for the face in ``box`` (upstream arithmetic)."""
        return self._landmarks68([image_rgb], [box])[0]

    def face_landmarks(
        self, image_rgb: np.ndarray, face_index: int | None = None, *, what: str = "the image"
    ) -> tuple[DetectedFace, np.ndarray]:
        """Detect, choose one face (`select_face`) and return it with its (68, 2) float32 landmarks.

        Raises:
            BackendError: ``no_face`` or ``bad_option`` (see `select_face`).
        """
        face = select_face(self.detect_faces(image_rgb), face_index, what=what)
        return face, self.landmarks68(image_rgb, face.box)

    def track_landmarks(
        self,
        frames_rgb: Sequence[np.ndarray],
        batch_size: int = 16,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """(T, 68, 2) float32 landmarks for a sequence of frames (upstream's second, per-crop pass).

        A frame without a face repeats the previous frame's landmarks; frames before the first face found are
        filled with `MISSING_LANDMARKS` (-1), which the 3DMM alignment replaces by the standard face. This is
        upstream's intent; with facexlib 0.3.0 upstream crashes (IndexError) on a frame without any face.
        ``progress(done, total)`` is called after each batch.
        """
        result = np.full((len(frames_rgb), 68, 2), MISSING_LANDMARKS, dtype=np.float32)
        previous: np.ndarray | None = None
        for start in range(0, len(frames_rgb), batch_size):
            chunk = frames_rgb[start : start + batch_size]
            detected = [self.detect_faces(frame) for frame in chunk]
            picked = [(i, select_face(faces).box) for i, faces in enumerate(detected) if faces]
            points = self._landmarks68([chunk[i] for i, _ in picked], [box for _, box in picked])
            found = {i: p for (i, _), p in zip(picked, points, strict=True)}
            for i in range(len(chunk)):
                previous = found.get(i, previous)
                if previous is not None:
                    result[start + i] = previous
            if progress is not None:
                progress(start + len(chunk), len(frames_rgb))
        return result

    def _landmarks68(self, images_rgb: Sequence[np.ndarray], boxes: Sequence[Box]) -> list[np.ndarray]:
        crops, origins = [], []
        for image, box in zip(images_rgb, boxes, strict=True):
            x1, y1, x2, y2 = crop_box(box, image.shape[:2])
            if x2 <= x1 or y2 <= y1:
                raise BackendError(ErrorCode.NO_FACE, f"Face box {box} lies outside the image.", NO_FACE_HINT)
            crops.append(image[y1:y2, x1:x2])
            origins.append((x1, y1))
        result = []
        all98 = predict_landmarks98(self.aligner, crops, self.device)
        for points98, (x1, y1) in zip(all98, origins, strict=True):
            points = landmarks_98_to_68(points98)
            points[:, 0] += x1  # float32 + int, in upstream's order (map to 68 first, then shift)
            points[:, 1] += y1
            result.append(points)
        return result
