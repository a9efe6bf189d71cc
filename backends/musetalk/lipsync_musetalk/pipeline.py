"""The MuseTalk 1.5 render loop: face boxes, reference latents, then UNet + decode + blend frame by frame.

Plain functions from arrays and loaded networks to frames (``scripts/inference.py`` of TMElyralab/MuseTalk,
normal mode), with these differences on purpose:

- work that depends only on a source frame (its box, reference latents and blending mask) is done once
  per distinct frame, not once per output frame;
- a frame without a face passes through unchanged (the official code drops it from the latent cycle, which
  puts the cycles out of step, and then stops writing frames at the first such frame);
- the reference latents use the VAE posterior's mean instead of an unseeded random draw (`latents`).

Which source frame each output frame shows is the kit's `Timeline` (``--duration-mode``; MuseTalk's
official ``pingpong``: forwards, then backwards, as its ``frames + frames[::-1]`` cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from lipsync_kit.timeline import Timeline

from .audio import AudioWindows
from .blending import BlendMask, blend_masks, paste_face
from .face_box import FaceBox
from .latents import crop_face, decode_faces, encode_latents, generate_latents
from .parsing import FaceParser

__all__ = ["Networks", "SourceFaces", "prepare_sources", "render_frames"]

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
    timeline: Timeline,
    sources: SourceFaces,
    windows: AudioWindows,
    nets: Networks,
    batch_size: int,
    progress: Progress | None = None,
) -> Iterator[np.ndarray]:
    """Every output frame of ``timeline``, (H, W, 3) uint8 BGR, in order; output frame i speaks window i.

    Args:
        frames: the source frames (one for a still).
        timeline: which source frame each output frame shows (at most one per audio window).
        sources: `prepare_sources` of those frames; a frame missing from it passes through unchanged.
        windows: the audio tokens of every output frame.
        batch_size: output frames per UNet and VAE call.
    """
    total = len(timeline)
    if total > len(windows):
        raise ValueError(f"{total} output frames but {len(windows)} audio windows")
    for start in range(0, total, batch_size):
        outputs = range(start, min(start + batch_size, total))
        picked = timeline.source_indices(outputs.start, outputs.stop).tolist()
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
