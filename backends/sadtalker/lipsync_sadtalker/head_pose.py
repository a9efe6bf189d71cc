"""Head pose from binned logits and the keypoint transformation of the SadTalker face renderer.

Matches ``headpose_pred_to_degree``, ``get_rotation_matrix`` and ``keypoint_transformation`` in the
official ``src/facerender/modules/make_animation.py`` (github.com/OpenTalker/SadTalker), which follow
face-vid2vid (Wang et al., "One-Shot Free-View Neural Talking-Head Synthesis", CVPR 2021).
"""

from __future__ import annotations

from typing import Final, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "NUM_BINS",
    "HeadParams",
    "headpose_pred_to_degree",
    "rotation_matrix",
    "transform_keypoints",
]

NUM_BINS: Final = 66  # yaw/pitch/roll are classified into 66 bins of 3 degrees
DEGREES_PER_BIN: Final = 3
FIRST_BIN_DEGREES: Final = -99  # bin 0 maps to -99 degrees, bin 65 to 96
PI_APPROX: Final = 3.14  # the official degree -> radian conversion uses 3.14, not math.pi


class HeadParams(NamedTuple):
    """Head parameters decoded by the MappingNet (one row per item in the batch).

    Attributes:
        yaw, pitch, roll: (B, 66) logits over the angle bins.
        t: (B, 3) translation; only the y component is used.
        exp: (B, 3·K) expression offsets of the K keypoints, flattened (x, y, z) per keypoint.
    """

    yaw: Tensor
    pitch: Tensor
    roll: Tensor
    t: Tensor
    exp: Tensor


def headpose_pred_to_degree(logits: Tensor) -> Tensor:
    """Expected angle in degrees of binned logits: softmax · bin index · 3 − 99; (B, 66) -> (B,)."""
    bins = torch.arange(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=1) * bins).sum(dim=1) * DEGREES_PER_BIN + FIRST_BIN_DEGREES


def _radians(degrees: Tensor) -> Tensor:
    return degrees / 180 * PI_APPROX


def _matrices(rows: list[list[Tensor]]) -> Tensor:
    """(B, 3, 3) from a 3×3 nested list of (B,) tensors."""
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """``R = Rx(pitch) · Ry(yaw) · Rz(roll)`` from angles in degrees; (B,) each -> (B, 3, 3)."""
    pitch, yaw, roll = _radians(pitch), _radians(yaw), _radians(roll)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cr, sr = torch.cos(roll), torch.sin(roll)
    about_x = _matrices([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    about_y = _matrices([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    about_z = _matrices([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return about_x @ about_y @ about_z


def transform_keypoints(
    kp_canonical: Tensor,
    head: HeadParams,
    *,
    yaw: Tensor | None = None,
    pitch: Tensor | None = None,
    roll: Tensor | None = None,
    with_expression: bool = True,
) -> Tensor:
    """Pose the canonical keypoints: ``R · kp + (0, t_y, 0) + exp``.

    Args:
        kp_canonical: (B, K, 3) canonical keypoints from the KPDetector.
        head: decoded head parameters (logits) for the same batch.
        yaw, pitch, roll: optional (B,) angles in degrees that replace the decoded ones.
        with_expression: add the expression offsets (the official ``wo_exp`` is the negation).

    Returns:
        (B, K, 3) transformed keypoints. The inputs are not modified.
    """
    yaw = headpose_pred_to_degree(head.yaw) if yaw is None else yaw
    pitch = headpose_pred_to_degree(head.pitch) if pitch is None else pitch
    roll = headpose_pred_to_degree(head.roll) if roll is None else roll
    rotated = kp_canonical @ rotation_matrix(yaw, pitch, roll).transpose(1, 2)
    # The official code zeroes t_x and t_z by multiplying them by 0 (so NaN/inf would survive).
    keep_y = torch.tensor([0.0, 1.0, 0.0], dtype=head.t.dtype, device=head.t.device)
    moved = rotated + (head.t * keep_y).unsqueeze(1)
    if not with_expression:
        return moved
    return moved + head.exp.view(head.exp.shape[0], -1, 3)
