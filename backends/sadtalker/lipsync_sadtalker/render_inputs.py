"""Face-renderer inputs from in-memory arrays: source image, coefficient windows, camera overrides.

The equivalent of ``get_facerender_data`` in the official ``src/generate_facerender_batch.py``
(github.com/OpenTalker/SadTalker), without the PNG and ``.mat`` round trips. Frames are kept in time
order, one row each, so the renderer may process them in any grouping; `official_step_frames` gives
the official batch layout (batch row b holds a consecutive block of frames, padded with the last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

import numpy as np
import torch
from torch import Tensor

from .mapping import COEFF_CHANNELS_CROP, COEFF_CHANNELS_FULL

__all__ = [
    "COEFF_CHANNELS_CROP",  # re-exported: the semantics widths of the crop and full modes
    "COEFF_CHANNELS_FULL",
    "SEMANTIC_RADIUS",
    "WINDOW",
    "DrivingFrames",
    "RenderInputs",
    "camera_sequence",
    "coefficient_windows",
    "official_step_frames",
    "prepare_render_inputs",
    "source_image_tensor",
]

SEMANTIC_RADIUS: Final = 13  # frames on either side of the current one
WINDOW: Final = 2 * SEMANTIC_RADIUS + 1  # 27 frames per MappingNet input
EXPRESSION_CHANNELS: Final = 64  # columns 0:64 are expression; 64: angles, trans (and crop params)


@dataclass(frozen=True)
class DrivingFrames:
    """Per-frame driving signal, in time order (row i is frame i).

    Attributes:
        semantics: (N, C, 27) float32 coefficient windows (C = 70, or 73 in full mode).
        yaw, pitch, roll: (N,) float32 angles in degrees replacing the decoded pose, or None.
    """

    semantics: Tensor
    yaw: Tensor | None = None
    pitch: Tensor | None = None
    roll: Tensor | None = None

    def __len__(self) -> int:
        return self.semantics.shape[0]

    def take(self, frames: Tensor | Sequence[int]) -> DrivingFrames:
        """The given frames (any order, repeats allowed)."""
        index = torch.as_tensor(frames, dtype=torch.long)
        return DrivingFrames(*(None if v is None else v[index] for v in self._fields()))

    def to(self, device: torch.device | str) -> DrivingFrames:
        return DrivingFrames(*(None if v is None else v.to(device) for v in self._fields()))

    def _fields(self) -> tuple[Tensor | None, ...]:
        return self.semantics, self.yaw, self.pitch, self.roll


@dataclass(frozen=True)
class RenderInputs:
    """Everything the face renderer needs for one clip.

    Attributes:
        source_image: (1, 3, S, S) float32 in [0, 1].
        source_semantics: (1, C, 27) float32, the source coefficients repeated over the window.
        driving: the per-frame windows and camera overrides.
    """

    source_image: Tensor
    source_semantics: Tensor
    driving: DrivingFrames

    @property
    def num_frames(self) -> int:
        return len(self.driving)


def source_image_tensor(image: np.ndarray) -> Tensor:
    """(S, S, 3) uint8 RGB -> (1, 3, S, S) float32 in [0, 1].

    Multiplies by float32(1/255) like skimage's ``img_as_float32`` in the official loader (bit-exact;
    its same-size ``resize`` is the identity), not a division, which differs by up to 6e-8.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square (S, S, 3) uint8 image, got {image.shape} {image.dtype}")
    scaled = image.astype(np.float32) * np.float32(1 / 255)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))[None]


def coefficient_windows(coeffs: np.ndarray) -> np.ndarray:
    """(T, C) -> (T, C, 27): frames i−13 … i+13 for every frame i, clamped to [0, T−1]."""
    offsets = np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1)
    index = np.clip(np.arange(len(coeffs))[:, None] + offsets, 0, len(coeffs) - 1)
    return np.ascontiguousarray(coeffs[index].transpose(0, 2, 1))


def camera_sequence(degrees: Sequence[float], num_frames: int) -> np.ndarray:
    """Per-frame angles (T,) float32 from the user's key angles (official ``gen_camera_pose``).

    One value is held for every frame. Several values are joined by linear ramps that all move at
    the same speed, total absolute change / (T − 1) degrees per frame (so a segment gets frames in
    proportion to its change); the result is cut to T frames or padded with its last value.
    Where the official code divides by zero (T = 1, or two equal successive values) a
    zero-length segment is skipped and no change at all means the first value is held.
    """
    if not degrees:
        raise ValueError("camera_sequence needs at least one angle")
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    values = [float(d) for d in degrees]
    total_change = sum(abs(stop - start) for start, stop in pairwise(values))
    ramp: list[float] = []
    if num_frames > 1 and total_change > 0:
        per_frame = total_change / (num_frames - 1)
        for start, stop in pairwise(values):
            if stop != start:
                ramp.extend(np.arange(start, stop, per_frame if stop > start else -per_frame).tolist())
    ramp = ramp[:num_frames] or values[:1]
    ramp += [ramp[-1]] * (num_frames - len(ramp))
    return np.asarray(ramp, dtype=np.float32)


def official_step_frames(num_frames: int, batch_size: int) -> Tensor:
    """(steps, batch_size) frame indices of the official renderer loop.

    The official code pads the frames to a multiple of ``batch_size`` by repeating the last one and
    reshapes them to (batch, steps): row b of step s is frame b·steps + s (clamped to the last frame).
    """
    steps = -(-num_frames // batch_size)
    frames = torch.arange(batch_size * steps).view(batch_size, steps).T
    return frames.clamp(max=num_frames - 1)


def prepare_render_inputs(
    source_image: np.ndarray,
    source_coeffs: np.ndarray,
    generated_coeffs: np.ndarray,
    *,
    full: bool = False,
    still: bool = False,
    expression_scale: float = 1.0,
    yaw: Sequence[float] | None = None,
    pitch: Sequence[float] | None = None,
    roll: Sequence[float] | None = None,
) -> RenderInputs:
    """Build the renderer inputs for one clip.

    Args:
        source_image: (S, S, 3) uint8 RGB crop at the render size.
        source_coeffs: (73,) or (N, 73) coefficients of the source (exp 64, angle 3, trans 3, crop
            scale and offsets 3); the first row is used. 70 columns suffice unless ``full``.
        generated_coeffs: (T, 70) generated coefficients (exp 64, pose 6) per output frame.
        full: 73-channel semantics (the full/extfull mapping net): the source crop parameters are
            appended to every frame.
        still: every column from 64 on (pose, and crop parameters in full mode) is replaced by the
            source's, so the head keeps the source pose; expressions and blinks still animate.
        expression_scale: factor on the 64 generated expression coefficients.
        yaw, pitch, roll: key angles in degrees that override the rendered pose (see `camera_sequence`).

    Returns:
        CPU tensors; the driving frames in time order, without the official batch padding.
    """
    channels = COEFF_CHANNELS_FULL if full else COEFF_CHANNELS_CROP
    source = np.atleast_2d(np.asarray(source_coeffs, dtype=np.float32))[0]
    generated = np.asarray(generated_coeffs, dtype=np.float32)
    if source.shape[0] < channels:
        raise ValueError(f"source coefficients need {channels} columns, got {source.shape[0]}")
    if generated.ndim != 2 or generated.shape[0] == 0 or generated.shape[1] < COEFF_CHANNELS_CROP:
        raise ValueError(f"generated coefficients must be (T>0, 70), got {generated.shape}")
    source = source[:channels]
    target = generated[:, :COEFF_CHANNELS_CROP].copy()
    target[:, :EXPRESSION_CHANNELS] *= np.float32(expression_scale)
    if full:
        target = np.concatenate([target, np.tile(source[COEFF_CHANNELS_CROP:], (len(target), 1))], axis=1)
    if still:
        target[:, EXPRESSION_CHANNELS:] = source[EXPRESSION_CHANNELS:]
    num_frames = len(target)

    def camera(degrees: Sequence[float] | None) -> Tensor | None:
        return None if degrees is None else torch.from_numpy(camera_sequence(degrees, num_frames))

    return RenderInputs(
        source_image=source_image_tensor(source_image),
        source_semantics=torch.from_numpy(np.tile(source[:, None], (1, WINDOW)))[None],
        driving=DrivingFrames(
            semantics=torch.from_numpy(coefficient_windows(target)),
            yaw=camera(yaw),
            pitch=camera(pitch),
            roll=camera(roll),
        ),
    )
