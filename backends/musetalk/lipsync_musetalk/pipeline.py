"""The MuseTalk 1.5 render loop: face boxes, reference latents, then UNet + decode + blend frame by frame.

Plain functions from arrays and loaded networks to frames (``scripts/inference.py`` of TMElyralab/MuseTalk,
normal mode), with these differences on purpose:

- work that depends only on a source frame (its box, reference latents and blending mask) is done once
  per distinct frame, not once per output frame;
- a frame without a face passes through unchanged (the official code drops it from the latent cycle, which
  puts the cycles out of step, and then stops writing frames at the first such frame);
- the reference latents use the VAE posterior's mean instead of an unseeded random draw (`latents`).

The output frame ``i`` shows source frame `pingpong` (i): forwards, then backwards, as the official
``frames + frames[::-1]`` cycle does when the speech outlasts the video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .audio import AudioWindows
from .blending import BlendMask, blend_masks, paste_face
from .face_box import FaceBox
from .latents import crop_face, decode_faces, encode_latents, generate_latents
from .parsing import FaceParser

__all__ = ["Networks", "SourceFaces", "pingpong", "prepare_sources", "render_frames"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Networks:
    """The loaded networks of the frame loop."""

    unet: torch.nn.Module
    vae: torch.nn.Module


@dataclass(frozen=True)
class SourceFaces:
    """What the frame loop needs of each source frame that has a face, keyed by its index."""

    paste_boxes: dict[int, FaceBox]  # the face box with the v1.5 chin margin (clipped at the frame)
    latents: dict[int, torch.Tensor]  # (8, 32, 32) masked + reference latents on the VAE's device
    masks: dict[int, BlendMask]  # feathered blending mask and its crop box


def pingpong(index: int, count: int) -> int:
    """The source frame of output frame ``index`` for ``count`` source frames: 0..n-1, n-1..0, 0.."""
    position = index % (2 * count)
    return position if position < count else 2 * count - 1 - position


def _paste_box(box: FaceBox, frame: np.ndarray, extra_margin: int) -> FaceBox:
    return FaceBox(box.x1, box.y1, box.x2, min(box.y2 + extra_margin, frame.shape[0]))


def prepare_sources(
    frames: Sequence[np.ndarray],
    boxes: Sequence[FaceBox | None],
    vae: torch.nn.Module,
    parser: FaceParser,
    parsing_mode: str,
    extra_margin: int,
    batch_size: int,
) -> SourceFaces:
    """Latents and blending masks of every source frame with a face, each made once, in batches."""
    indices = [i for i, box in enumerate(boxes) if box is not None]
    paste_boxes = {i: _paste_box(boxes[i], frames[i], extra_margin) for i in indices}  # type: ignore[arg-type]
    latents: dict[int, torch.Tensor] = {}
    masks: dict[int, BlendMask] = {}
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        crops = np.stack([crop_face(frames[i], boxes[i], extra_margin) for i in chunk])  # type: ignore[arg-type]
        latents.update(zip(chunk, encode_latents(vae, crops), strict=True))
        chunk_masks = blend_masks(
            [frames[i] for i in chunk],
            [paste_boxes[i] for i in chunk],
            parser,
            parsing_mode,
            batch_size=batch_size,
        )
        masks.update(zip(chunk, chunk_masks, strict=True))
    return SourceFaces(paste_boxes, latents, masks)


def render_frames(
    frames: Sequence[np.ndarray],
    sources: SourceFaces,
    windows: AudioWindows,
    nets: Networks,
    batch_size: int,
    progress: Progress | None = None,
) -> Iterator[np.ndarray]:
    """Every output frame, (H, W, 3) uint8 BGR, one per audio window, in order.

    Args:
        frames: the source frames (one for a still).
        sources: `prepare_sources` of those frames; a frame missing from it passes through unchanged.
        windows: the audio tokens of every output frame.
        batch_size: output frames per UNet and VAE call.
    """
    total = len(windows)
    for start in range(0, total, batch_size):
        outputs = range(start, min(start + batch_size, total))
        picked = [pingpong(i, len(frames)) for i in outputs]
        talking = [k for k, source in enumerate(picked) if source in sources.latents]
        faces: dict[int, np.ndarray] = {}
        if talking:
            batch = torch.stack([sources.latents[picked[k]] for k in talking])
            tokens = windows.batch(np.array([outputs[k] for k in talking]))
            generated = decode_faces(nets.vae, generate_latents(nets.unet, batch, tokens))
            faces = dict(zip(talking, generated, strict=True))
        for k, source in enumerate(picked):
            if k not in faces:
                yield frames[source]
                continue
            box = sources.paste_boxes[source]
            face = cv2.resize(faces[k], (box.x2 - box.x1, box.y2 - box.y1))  # bilinear, as the official
            yield paste_face(frames[source], face, box, sources.masks[source])
        if progress is not None:
            progress(outputs.stop, total)
