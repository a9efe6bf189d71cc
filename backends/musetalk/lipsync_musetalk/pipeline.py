"""The MuseTalk 1.5 render loop: face boxes, reference latents, then UNet + decode + blend frame by frame.

Plain functions from arrays and loaded networks to frames (``scripts/inference.py`` of TMElyralab/MuseTalk,
normal mode), with these differences on purpose:

- work that depends only on a source frame (its box, its reference latents) is done once per distinct
  frame, not once per output frame;
- a frame without a face passes through unchanged (the official code drops it from the latent cycle, which
  puts the cycles out of step, and then stops writing frames at the first such frame);
- the reference latents use the VAE posterior's mean instead of an unseeded random draw (`latents`).

The output frame ``i`` shows source frame `pingpong` (i): forwards, then backwards, as the official
``frames + frames[::-1]`` cycle does when the speech outlasts the video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from lipsync_kit.s3fd import FaceDetector

from .audio import AudioWindows
from .blending import blend
from .face_box import face_box
from .latents import Box, crop_face, decode_faces, encode_latents, generate_latents

__all__ = ["BlendSettings", "Networks", "find_face_boxes", "pingpong", "reference_latents", "render_frames"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Networks:
    """The loaded networks one render uses."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    parser: Any  # BiSeNet face parsing (`parsing.load_bisenet`)


@dataclass(frozen=True)
class BlendSettings:
    extra_margin: int
    parsing_mode: str
    left_cheek_width: int
    right_cheek_width: int


def pingpong(index: int, count: int) -> int:
    """The source frame of output frame ``index`` for ``count`` source frames: 0..n-1, n-1..0, 0.."""
    position = index % (2 * count)
    return position if position < count else 2 * count - 1 - position


def find_face_boxes(
    frames: Sequence[np.ndarray], pose: Any, detector: FaceDetector, progress: Progress | None = None
) -> list[Box | None]:
    """The official v1.5 face box of every frame, None where S3FD finds no face.

    DWPose's 68 face landmarks give the box; S3FD decides whether there is a face at all and is the
    fallback box (``musetalk/utils/preprocessing.py:get_landmark_and_bbox``).
    """
    detections = detector.detect(frames)
    boxes: list[Box | None] = []
    for index, (frame, detection) in enumerate(zip(frames, detections, strict=True)):
        if detection is None:
            boxes.append(None)
        else:
            box = face_box(pose.landmarks(frame), detection)
            boxes.append(tuple(int(v) for v in box))  # type: ignore[arg-type]
        if progress is not None:
            progress(index + 1, len(frames))
    return boxes


def _valid(box: Box | None, frame: np.ndarray) -> bool:
    """Whether a box leaves pixels to crop (the official crashes on an empty crop)."""
    if box is None:
        return False
    x1, y1, x2, y2 = box
    height, width = frame.shape[:2]
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 and y1 < height


def reference_latents(
    vae: torch.nn.Module,
    frames: Sequence[np.ndarray],
    boxes: Sequence[Box | None],
    extra_margin: int,
    batch_size: int,
) -> dict[int, torch.Tensor]:
    """(8, 32, 32) masked + reference latents per source frame that has a face, on the VAE's device."""
    indices = [i for i, box in enumerate(boxes) if box is not None]
    latents: dict[int, torch.Tensor] = {}
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        crops = np.stack([crop_face(frames[i], boxes[i], extra_margin) for i in chunk])  # type: ignore[arg-type]
        for i, latent in zip(chunk, encode_latents(vae, crops), strict=True):
            latents[i] = latent
    return latents


def _paste(
    frame: np.ndarray, face: np.ndarray, box: Box, nets: Networks, settings: BlendSettings
) -> np.ndarray:
    """The generated 256x256 face resized into its v1.5 box (with the chin margin) and blended in."""
    x1, y1, x2, y2 = box
    y2 = min(y2 + settings.extra_margin, frame.shape[0])
    resized = cv2.resize(face, (x2 - x1, y2 - y1))  # bilinear, as the official
    return blend(
        frame,
        resized,
        (x1, y1, x2, y2),
        nets.parser,
        settings.parsing_mode,
        left_cheek_width=settings.left_cheek_width,
        right_cheek_width=settings.right_cheek_width,
    )


def render_frames(
    frames: Sequence[np.ndarray],
    boxes: Sequence[Box | None],
    windows: AudioWindows,
    nets: Networks,
    settings: BlendSettings,
    batch_size: int,
    progress: Progress | None = None,
) -> Iterator[np.ndarray]:
    """Every output frame, (H, W, 3) uint8 BGR, one per audio window, in order.

    Args:
        frames: the source frames (one for a still).
        boxes: per source frame, its face box from `find_face_boxes`, None for no face.
        windows: the audio tokens of every output frame.
        batch_size: output frames per UNet and VAE call.
    """
    boxes = [box if _valid(box, frame) else None for box, frame in zip(boxes, frames, strict=True)]
    latents = reference_latents(nets.vae, frames, boxes, settings.extra_margin, batch_size)
    total = len(windows)
    for start in range(0, total, batch_size):
        outputs = range(start, min(start + batch_size, total))
        sources = [pingpong(i, len(frames)) for i in outputs]
        talking = [k for k, source in enumerate(sources) if boxes[source] is not None]
        faces: dict[int, np.ndarray] = {}
        if talking:
            batch = torch.stack([latents[sources[k]] for k in talking])
            tokens = windows.batch(np.array([outputs[k] for k in talking]))
            generated = decode_faces(nets.vae, generate_latents(nets.unet, batch, tokens))
            faces = dict(zip(talking, generated, strict=True))
        for k, source in enumerate(sources):
            box = boxes[source]
            yield frames[source] if box is None else _paste(frames[source], faces[k], box, nets, settings)
        if progress is not None:
            progress(outputs.stop, total)
