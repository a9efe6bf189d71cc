"""SadTalker head pose: binned-logit degrees, the 3.14 rotation and the keypoint transformation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_sadtalker.head_pose import (
    HeadParams,
    headpose_pred_to_degree,
    rotation_matrix,
    transform_keypoints,
)
from standin import load_golden
from tolerances import assert_parity

# reference/sadtalker/README.md, keypoint_transformation: degree_* (up to +-99 degrees, a sum over 66 bins)
# atol 1e-4; rot_mat*, out_value* atol 1e-5.
DEGREE_ATOL = 1e-4
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_keypoint_transformation.npz")


def _tensor(golden: dict[str, np.ndarray], name: str) -> torch.Tensor:
    return torch.from_numpy(golden[name].copy())


def _inputs(golden: dict[str, np.ndarray]) -> tuple[torch.Tensor, HeadParams]:
    head = HeadParams(*(_tensor(golden, f"in_{name}") for name in HeadParams._fields))
    return _tensor(golden, "in_kp_canonical"), head


def _check(got: torch.Tensor, golden: dict[str, np.ndarray], name: str) -> None:
    assert_parity(got.numpy(), golden[name], DEGREE_ATOL if name.startswith("degree_") else ATOL, name)


def test_degrees_match_golden(golden: dict[str, np.ndarray]) -> None:
    for angle in ("yaw", "pitch", "roll"):
        _check(headpose_pred_to_degree(_tensor(golden, f"in_{angle}")), golden, f"degree_{angle}")


def test_rotation_matrices_match_golden(golden: dict[str, np.ndarray]) -> None:
    degrees = [_tensor(golden, f"degree_{angle}") for angle in ("yaw", "pitch", "roll")]
    _check(rotation_matrix(*degrees), golden, "rot_mat")
    overrides = [_tensor(golden, f"in_{angle}_in") for angle in ("yaw", "pitch", "roll")]
    _check(rotation_matrix(*overrides), golden, "rot_mat_from_in_degrees")


def test_keypoint_transformation_matches_golden(golden: dict[str, np.ndarray]) -> None:
    kp, head = _inputs(golden)
    before = [value.clone() for value in head]
    _check(transform_keypoints(kp, head), golden, "out_value")
    yaw, pitch, roll = (_tensor(golden, f"in_{angle}_in") for angle in ("yaw", "pitch", "roll"))
    _check(
        transform_keypoints(kp, head, yaw=yaw, pitch=pitch, roll=roll),
        golden,
        "out_value_with_yaw_pitch_roll_in",
    )
    _check(transform_keypoints(kp, head, with_expression=False), golden, "out_value_wo_exp")
    for value, original in zip(head, before, strict=True):  # unlike the official, t is not zeroed in place
        torch.testing.assert_close(value, original, rtol=0, atol=0)


def test_degrees_span_the_bins_and_use_pi_314() -> None:
    peaked = torch.full((2, 66), -1e4)
    peaked[0, 0] = peaked[1, 65] = 1e4
    torch.testing.assert_close(headpose_pred_to_degree(peaked), torch.tensor([-99.0, 96.0]))
    quarter_turn = rotation_matrix(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([90.0]))
    # 90 degrees becomes 1.57 rad, not pi/2: the official approximation is part of the model.
    assert quarter_turn[0, 0, 0].item() == pytest.approx(math.cos(1.57), abs=1e-7)


def test_translation_keeps_only_y() -> None:
    head = HeadParams(
        yaw=torch.zeros(1, 66),
        pitch=torch.zeros(1, 66),
        roll=torch.zeros(1, 66),
        t=torch.tensor([[5.0, 0.25, 7.0]]),
        exp=torch.zeros(1, 3),
    )
    zero = torch.zeros(1)
    moved = transform_keypoints(torch.zeros(1, 1, 3), head, yaw=zero, pitch=zero, roll=zero)
    torch.testing.assert_close(moved, torch.tensor([[[0.0, 0.25, 0.0]]]))
