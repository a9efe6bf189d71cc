"""The Wav2Lip inference pipeline as plain functions over arrays.

Follows the official ``inference.py`` step by step (frame preparation, face boxes, the 6-channel
model input, the truncating uint8 conversion, the rectangular paste), with the fixes listed in the
research notes: a video whose frames run out loops from the start, frames cover the whole audio,
and a still image's face is encoded once instead of once per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import torch

from .wav2lip import FACE_SIZE, Wav2Lip

__all__ = [
    "CropBox",
    "FaceTrack",
    "blend_mask",
    "crop_faces",
    "face_input",
    "generate",
    "paste",
    "prepare_frame",
    "prepare_video_frames",
    "to_uint8",
]

CropBox = tuple[int, int, int, int]  # (y1, y2, x1, x2), the official coords order
ProgressFn = Callable[[int, int], None]

_HALF: Final = FACE_SIZE // 2  # rows 48..95 of the model input are masked (the mouth half)


def prepare_frame(frame: np.ndarray, *, resize_factor: int, rotate: bool, crop: Sequence[int]) -> np.ndarray:
    """Resize (bilinear, like ``cv2.resize``), rotate 90° clockwise, then crop one video frame.

    ``crop`` is (top, bottom, left, right); -1 for bottom/right means the frame edge.
    """
    top, bottom, left, right = crop
    if resize_factor > 1:
        height, width = frame.shape[:2]
        frame = cv2.resize(frame, (width // resize_factor, height // resize_factor))
    if rotate:
        frame = cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    height, width = frame.shape[:2]
    frame = frame[top : height if bottom == -1 else bottom, left : width if right == -1 else right]
    return np.ascontiguousarray(frame)


def prepare_video_frames(
    frames: Sequence[np.ndarray], *, resize_factor: int, rotate: bool, crop: Sequence[int]
) -> list[np.ndarray]:
    """`prepare_frame` of each frame."""
    return [prepare_frame(f, resize_factor=resize_factor, rotate=rotate, crop=crop) for f in frames]


@dataclass(frozen=True)
class FaceTrack:
    """The face box of every input frame (a still image has one)."""

    boxes: list[CropBox]

    def box_for(self, frame_index: int) -> CropBox:
        return self.boxes[frame_index % len(self.boxes)]


def crop_faces(frames: Sequence[np.ndarray], track: FaceTrack) -> np.ndarray:
    """(N, 96, 96, 3) uint8 BGR: each frame's face box resized bilinearly to the model size."""
    crops = []
    for index, frame in enumerate(frames):
        y1, y2, x1, x2 = track.box_for(index)
        crops.append(cv2.resize(frame[y1:y2, x1:x2], (FACE_SIZE, FACE_SIZE)))
    return np.stack(crops)


def face_input(crops: np.ndarray) -> np.ndarray:
    """(B, 6, 96, 96) float32 in [0, 1]: [crop with its lower half zeroed, crop], BGR, /255."""
    masked = crops.copy()
    masked[:, _HALF:] = 0
    stacked = np.concatenate((masked, crops), axis=3).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def to_uint8(prediction: torch.Tensor) -> np.ndarray:
    """(B, 3, 96, 96) in (0, 1) -> (B, 96, 96, 3) uint8, truncated like the official ``astype``."""
    return (prediction.permute(0, 2, 3, 1) * 255.0).to(torch.uint8).cpu().numpy()


def generate(
    model: Wav2Lip,
    faces: np.ndarray,
    windows: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    face_indices: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[np.ndarray]:
    """Run the generator over all mel windows; yield (B, 96, 96, 3) uint8 mouths batch by batch.

    Args:
        faces: (F, 6, 96, 96) float32 model face inputs, one per input frame.
        windows: (N, 80, 16) float32 mel windows, one per output frame.
        face_indices: which face row each output frame uses (default ``i % F``).
    """
    total = len(windows)
    indices = np.asarray(face_indices if face_indices is not None else np.arange(total) % len(faces))
    faces_t = torch.from_numpy(faces).to(device)
    # A still image has one face input: its encoder features are the same for every frame.
    still_skips = model.encode_face(faces_t) if len(faces) == 1 else None
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        audio = torch.from_numpy(np.ascontiguousarray(windows[start:stop, None])).to(device)
        if still_skips is not None:
            skips = [feature.expand(stop - start, -1, -1, -1) for feature in still_skips]
            prediction = model.decode(audio, skips)
        else:
            prediction = model(audio, faces_t[torch.from_numpy(indices[start:stop])])
        yield to_uint8(prediction)
        if progress is not None:
            progress(stop, total)


def blend_mask(height: int, width: int) -> np.ndarray:
    """(H, W, 1) float32 weights for ``--paste blend``: the lower face, feathered on every side.

    The generator only redraws the masked lower half; blending a soft-edged region around it hides
    the box seam that the official hard paste leaves (Wav2Lip issues #184, #271, #415).
    """
    mask = np.zeros((height, width), np.float32)
    top, side = round(height * 0.42), round(width * 0.08)
    mask[top : height - max(1, height // 30), side : width - side] = 1.0
    sigma = max(1.0, 0.06 * (height + width) / 2)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return mask[:, :, None]


def paste(
    frame: np.ndarray, mouth: np.ndarray, box: CropBox, mode: str, mask: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``frame`` with the generated 96x96 face resized into ``box``.

    ``exact`` is the official hard rectangle; ``blend`` mixes with `blend_mask` (pass it in to reuse it).
    """
    y1, y2, x1, x2 = box
    resized = cv2.resize(mouth, (x2 - x1, y2 - y1))
    out = frame.copy()
    if mode == "exact":
        out[y1:y2, x1:x2] = resized
        return out
    weights = mask if mask is not None else blend_mask(y2 - y1, x2 - x1)
    region = out[y1:y2, x1:x2].astype(np.float32)
    mixed = region + (resized.astype(np.float32) - region) * weights
    out[y1:y2, x1:x2] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out
