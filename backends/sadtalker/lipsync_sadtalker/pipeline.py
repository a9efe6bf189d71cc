"""SadTalker's stages as functions of arrays: source analysis, reference videos, coefficients, frames.

The backend (`backend.py`) strings them together; nothing here reads files or knows the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from lipsync_kit.errors import BackendError, ErrorCode

from .alignment import align_for_recon
from .audio2pose import LATENT_DIM, pose_chunk_count
from .coefficients import COEFF_DIM, EXP_DIM, predict_coefficients
from .crop import CropInfo, apply_crop, plan_crop
from .face_analysis import FaceAnalyzer, is_missing
from .models import BundleNets
from .recon_net import ReconNet, coefficients_73, to_input

__all__ = [
    "FULL_MODES",
    "MIN_FACE_PX",
    "SourceFace",
    "analyse_source",
    "check_face_size",
    "driving_coefficients",
    "output_size",
    "pose_noise",
    "reference_coefficients",
    "to_uint8_frames",
]

FULL_MODES: Final = ("full", "extfull")
MIN_FACE_PX: Final = 48  # a smaller face square has too few pixels for the 3DMM fit to mean anything
RECON_BATCH: Final = 32


@dataclass(frozen=True)
class SourceFace:
    """The source portrait as the renderer sees it.

    Attributes:
        crop: (size, size, 3) uint8 RGB crop fed to the renderer.
        info: where the crop came from (paste-back uses ``info.region_in_image``).
        coeffs: (73,) float32 3DMM coefficients of the crop (exp, angle, trans, crop scale/offsets).
        box: the detected face box (x1, y1, x2, y2) in image pixels; None in ``resize`` mode.
    """

    crop: np.ndarray
    info: CropInfo
    coeffs: np.ndarray
    box: tuple[float, float, float, float] | None


def recon_coefficients(recon: ReconNet, crops: Sequence[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
    """(N, 73) coefficients of face crops given their (N, 68, 2) landmarks (-1 rows: standard face)."""
    device = next(recon.parameters()).device
    rows = []
    for start in range(0, len(crops), RECON_BATCH):
        aligned, params = [], []
        for crop, points in zip(
            crops[start : start + RECON_BATCH], landmarks[start : start + RECON_BATCH], strict=True
        ):
            image, trans = align_for_recon(crop, None if is_missing(points) else points)
            aligned.append(image)
            params.append(trans)
        with torch.inference_mode():
            coeffs257 = recon(to_input(np.stack(aligned), device)).float().cpu().numpy()
        rows.append(coefficients_73(coeffs257, params))
    return np.concatenate(rows)


def check_face_size(info: CropInfo, what: str) -> None:
    width, height = info.face_size
    if min(width, height) < MIN_FACE_PX:
        raise BackendError(
            ErrorCode.NO_FACE,
            f"the face in {what} is only {width}x{height} px; SadTalker needs at least {MIN_FACE_PX} px",
            "use a larger or closer portrait (the face should fill a good part of the picture)",
        )


def analyse_source(
    frame_rgb: np.ndarray,
    analyzer: FaceAnalyzer,
    recon: ReconNet,
    *,
    mode: str,
    size: int,
    face_index: int | None,
    what: str,
) -> SourceFace:
    """Detect the face, crop it (``mode``), find landmarks on the crop and fit the 3DMM coefficients."""
    box = None
    landmarks = None
    if mode != "resize":
        face, landmarks = analyzer.face_landmarks(frame_rgb, face_index, what=what)
        box = face.box
    height, width = frame_rgb.shape[:2]
    info = plan_crop(landmarks, (width, height), mode)
    if mode != "resize":
        check_face_size(info, what)
    crop = apply_crop(frame_rgb, info, size)
    crop_landmarks = analyzer.track_landmarks([crop])
    coeffs = recon_coefficients(recon, [crop], crop_landmarks)[0]
    return SourceFace(crop=crop, info=info, coeffs=coeffs, box=box)


def reference_coefficients(
    frames_rgb: Sequence[np.ndarray],
    analyzer: FaceAnalyzer,
    recon: ReconNet,
    *,
    mode: str,
    size: int,
    what: str,
) -> np.ndarray:
    """(N, 73) coefficients of every frame of a reference video (``--ref-eyeblink`` / ``--ref-pose``).

    As upstream: the crop is planned on the first frame and applied to all; landmarks per crop.
    """
    landmarks = None
    if mode != "resize":
        _, landmarks = analyzer.face_landmarks(frames_rgb[0], what=what)
    height, width = frames_rgb[0].shape[:2]
    info = plan_crop(landmarks, (width, height), mode)
    crops = [apply_crop(frame, info, size) for frame in frames_rgb]
    return recon_coefficients(recon, crops, analyzer.track_landmarks(crops))


def _looped(rows: np.ndarray, count: int) -> np.ndarray:
    """``rows`` repeated end to end and cut to ``count`` (a shorter reference video loops)."""
    repeats = -(-count // len(rows))
    return np.concatenate([rows] * repeats)[:count]


def pose_noise(num_frames: int, seed: int) -> torch.Tensor:
    """(chunks, 1, 64) pose latents drawn on the CPU from ``seed``: the same on every device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((pose_chunk_count(num_frames), 1, LATENT_DIM), generator=generator)


def driving_coefficients(
    nets: BundleNets,
    windows: np.ndarray,
    source_coeffs: np.ndarray,
    *,
    blink: np.ndarray,
    pose_style: int,
    seed: int,
    ref_eyeblink: np.ndarray | None = None,
    ref_pose: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 70) coefficients: Audio2Exp + Audio2Pose (smoothed), with the reference videos applied.

    Args:
        ref_eyeblink: (N, 73) reference coefficients whose expressions replace the source's per frame
            (blinks then come from that video, so ``blink`` is ignored).
        ref_pose: (N, 73) reference coefficients whose pose motion (relative to its first frame) is added.
    """
    frames = len(windows)
    ref = source_coeffs[:COEFF_DIM]
    if ref_eyeblink is not None:
        ref = np.tile(ref, (frames, 1))
        ref[:, :EXP_DIM] = _looped(ref_eyeblink[:, :EXP_DIM], frames)
        blink = np.zeros(frames, np.float32)
    noise = pose_noise(frames, seed).to(next(nets.audio2pose.parameters()).device)
    coeffs = predict_coefficients(
        nets.audio2exp, nets.audio2pose, windows, ref, blink, pose_style, pose_noise=noise
    )
    if ref_pose is not None:
        motion = _looped(ref_pose[:, EXP_DIM:COEFF_DIM], frames)
        coeffs[:, EXP_DIM:] += motion - motion[:1]
    return coeffs


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) floats in [0, 1] -> (N, S, S, 3) uint8 RGB, rounded to nearest."""
    scaled = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def output_size(info: CropInfo, size: int) -> tuple[int, int]:
    """(width, height) of a cropped-mode video: width ``size``, the face square's aspect ratio kept."""
    width, height = info.face_size
    return size, max(2, round(size * height / width))
