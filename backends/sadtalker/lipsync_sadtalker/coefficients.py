"""Speech -> per-frame 3DMM motion coefficients: Audio2Exp expressions plus smoothed Audio2Pose poses.

Parity target: ``Audio2Coeff.generate`` in ``src/test_audio2coeff.py`` of github.com/OpenTalker/SadTalker
(``cd4c046``) without ``--ref_pose``. Output row layout (70 columns): expression 0:64, angles
64:67 (yaw, pitch, roll in radians), translation 67:70.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from scipy.signal import savgol_filter

from .audio2exp import EXP_DIM, Audio2Exp
from .audio2pose import NUM_POSE_STYLES, POSE_DIM, Audio2Pose

__all__ = ["COEFF_DIM", "predict_coefficients", "smooth_pose"]

COEFF_DIM: Final = EXP_DIM + POSE_DIM  # 70
SAVGOL_WINDOW: Final = 13  # frames (0.52 s at 25 fps)
SAVGOL_ORDER: Final = 2


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky-Golay smoothing over time (window 13, order 2, scipy's default "interp" edges).

    Shorter sequences use the largest odd window that fits, as upstream does; with fewer than 3
    frames (where upstream's filter call fails) the pose is returned unchanged.

    Args:
        pose: (T, 6).

    Returns:
        (T, 6), same dtype, a new array.
    """
    frames = len(pose)
    window = SAVGOL_WINDOW if frames >= SAVGOL_WINDOW else (frames - 1) // 2 * 2 + 1
    if window <= SAVGOL_ORDER:
        return pose.copy()
    return savgol_filter(pose, window, SAVGOL_ORDER, axis=0).astype(pose.dtype, copy=False)


def predict_coefficients(
    audio2exp: Audio2Exp,
    audio2pose: Audio2Pose,
    windows: np.ndarray,
    ref_coeffs: np.ndarray,
    blink: np.ndarray,
    pose_style: int,
    generator: torch.Generator | None = None,
    *,
    pose_noise: torch.Tensor | None = None,
) -> np.ndarray:
    """The (T, 70) coefficient sequence that drives the face renderer.

    Expressions come from Audio2Exp per frame; poses are the reference pose plus Audio2Pose motion
    (frame 0 keeps the reference pose), then smoothed by `smooth_pose`. Both networks must be in eval
    mode and on the same device; everything is computed there in their dtype.

    Args:
        audio2exp, audio2pose: the loaded networks.
        windows: (T, 80, 16) mel windows (`audio_features.mel_windows`).
        ref_coeffs: the source frame's coefficients, (C,) or, to vary the reference expression per
            frame (``--ref_eyeblink``), (T, C); C >= 70, columns past 70 are ignored. The pose
            reference is row 0.
        blink: (T,) eye-closure ratio (`audio_features.blink_ratio`; zeros for no blinks).
        pose_style: pose-style class in [0, 46).
        generator: draws the pose latents (seed it for reproducible output); None uses torch's global
            generator.
        pose_noise: (chunks, 1, 64) latents to use instead (`audio2pose.pose_chunk_count` chunks).

    Returns:
        (T, 70) float32: expression 0:64, angles 64:67, translation 67:70.

    Raises:
        BackendError(BAD_OPTION): `pose_style` outside [0, 46).
    """
    if not 0 <= pose_style < NUM_POSE_STYLES:
        raise BackendError(
            ErrorCode.BAD_OPTION, f"pose style must be in 0..{NUM_POSE_STYLES - 1}, got {pose_style}"
        )
    frames = len(windows)
    if len(blink) != frames or (ref_coeffs.ndim == 2 and len(ref_coeffs) != frames):
        raise ValueError(
            f"{frames} mel windows but {len(blink)} blink values and ref shape {ref_coeffs.shape}"
        )
    if ref_coeffs.shape[-1] < COEFF_DIM:
        raise ValueError(f"reference coefficients need at least {COEFF_DIM} columns, got {ref_coeffs.shape}")
    parameter = next(audio2exp.parameters())
    device, dtype = parameter.device, parameter.dtype

    def tensor(array: np.ndarray) -> torch.Tensor:
        # A copy: the inputs may be read-only views (np.broadcast_to).
        return torch.tensor(np.ascontiguousarray(array), device=device, dtype=dtype)

    ref = tensor(np.broadcast_to(ref_coeffs[..., :COEFF_DIM], (frames, COEFF_DIM)))
    with torch.inference_mode():
        mels = tensor(windows)
        expression = audio2exp.predict(mels, ref[:, :EXP_DIM], tensor(blink))
        ref_pose = ref[:1, EXP_DIM:]
        style = torch.tensor([pose_style], device=device)
        motion = audio2pose(mels[None], ref_pose, style, noise=pose_noise, generator=generator)[0]
        pose = ref_pose + motion
    pose_np = smooth_pose(pose.float().cpu().numpy())
    return np.concatenate([expression.float().cpu().numpy(), pose_np], axis=1)
