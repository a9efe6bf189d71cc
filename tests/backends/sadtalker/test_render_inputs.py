"""SadTalker renderer inputs: parity with the official get_facerender_data, camera ramps, frame layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lipsync_sadtalker.render_inputs import (
    WINDOW,
    DrivingFrames,
    RenderInputs,
    camera_sequence,
    coefficient_windows,
    official_step_frames,
    prepare_render_inputs,
)
from standin import load_golden

# reference/sadtalker/README.md, facerender_data: atol 1e-6 (pure indexing/copies). The values reach 130 (crop
# parameters), where one float32 step is 1.5e-5, so that atol means equality; every value is a copy or one
# IEEE operation in numpy (no sums), which is exact on any CPU. Compared exactly.
BATCH_SIZE = 2  # both official calls


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_facerender_data.npz")


def _official_layout(values: torch.Tensor, num_frames: int) -> np.ndarray:
    """Per-frame rows -> (batch, steps, ...) exactly as the official code lays them out."""
    frames = official_step_frames(num_frames, BATCH_SIZE).T  # (batch, steps)
    return values[frames].numpy()


def _close(got: np.ndarray, golden: dict[str, np.ndarray], name: str) -> None:
    assert got.shape == golden[name].shape, name
    np.testing.assert_array_equal(got, golden[name], err_msg=name)


def _call(golden: dict[str, np.ndarray], **options: Any) -> RenderInputs:
    return prepare_render_inputs(
        golden["input_image_u8_hwc"],
        golden["input_first_coeff_3dmm"],
        golden["input_generated_coeff_3dmm"],
        **options,
    )


def test_crop_mode_matches_golden(golden: dict[str, np.ndarray]) -> None:
    inputs = _call(golden)
    assert inputs.num_frames == int(golden["call1_frame_num"]) == 3
    # Reproduced bit-exactly (img_as_float32 multiplies by float32(1/255); u8/255 would differ by 6e-8).
    np.testing.assert_array_equal(inputs.source_image.numpy(), golden["call1_source_image"])
    _close(inputs.source_semantics.expand(BATCH_SIZE, -1, -1).numpy(), golden, "call1_source_semantics")
    _close(_official_layout(inputs.driving.semantics, 3), golden, "call1_target_semantics_list")
    assert inputs.driving.yaw is inputs.driving.pitch is inputs.driving.roll is None


def test_full_still_mode_with_camera_matches_golden(golden: dict[str, np.ndarray]) -> None:
    inputs = _call(
        golden, full=True, still=True, expression_scale=1.5, yaw=[0, 20], pitch=[5], roll=[-10, 10, 0]
    )
    _close(inputs.source_semantics.expand(BATCH_SIZE, -1, -1).numpy(), golden, "call2_source_semantics")
    _close(_official_layout(inputs.driving.semantics, 3), golden, "call2_target_semantics_list")
    for angle in ("yaw", "pitch", "roll"):
        sequence = getattr(inputs.driving, angle)
        assert sequence is not None and sequence.dtype == torch.float32
        _close(_official_layout(sequence, 3), golden, f"call2_{angle}_c_seq")


def test_still_mode_keeps_the_source_pose_but_not_its_expression(golden: dict[str, np.ndarray]) -> None:
    source = golden["input_first_coeff_3dmm"][0]
    windows = _call(golden, still=True).driving.semantics.numpy()
    np.testing.assert_array_equal(windows[:, 64:70], np.broadcast_to(source[64:70, None], (3, 6, WINDOW)))
    moving = _call(golden).driving.semantics.numpy()
    np.testing.assert_array_equal(windows[:, :64], moving[:, :64])


def test_windows_clamp_at_both_ends() -> None:
    coeffs = np.arange(5, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    windows = coefficient_windows(coeffs)
    assert windows.shape == (5, 2, WINDOW)
    np.testing.assert_array_equal(windows[0, 0], np.r_[np.zeros(13), np.arange(5), np.full(9, 4)])
    np.testing.assert_array_equal(windows[4, 1, 13], 4)


def test_official_step_frames_pad_with_the_last_frame() -> None:
    assert official_step_frames(3, 2).tolist() == [[0, 2], [1, 2]]
    assert official_step_frames(4, 4).tolist() == [[0, 1, 2, 3]]
    assert official_step_frames(5, 1).tolist() == [[0], [1], [2], [3], [4]]


@pytest.mark.parametrize(
    ("degrees", "frames", "expected"),
    [
        ([7], 3, [7, 7, 7]),
        ([0, 20], 3, [0, 10, 10]),  # the ramp stops one step short of its end value, as upstream
        ([-10, 10, 0], 3, [-10, 5, 10]),
        ([0, 30], 4, [0, 10, 20, 20]),
        ([0, 10, 10, 20], 3, [0, 10, 10]),  # equal successive values: upstream divides by zero
        ([5, 5], 2, [5, 5]),  # no change at all: upstream divides by zero
        ([0, 20], 1, [0]),  # a single frame: upstream divides by zero
    ],
)
def test_camera_sequence(degrees: list[float], frames: int, expected: list[float]) -> None:
    got = camera_sequence(degrees, frames)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.float32(expected))  # float64 ramps, one cast: exact


def test_driving_frames_select_any_order(golden: dict[str, np.ndarray]) -> None:
    driving = _call(golden, yaw=[0, 20]).driving
    picked = driving.take([2, 0])
    assert isinstance(picked, DrivingFrames) and len(picked) == 2
    torch.testing.assert_close(picked.semantics, driving.semantics[[2, 0]], rtol=0, atol=0)
    assert picked.yaw is not None and driving.yaw is not None
    torch.testing.assert_close(picked.yaw, driving.yaw[[2, 0]], rtol=0, atol=0)
    assert picked.pitch is None


def test_bad_inputs_are_refused(golden: dict[str, np.ndarray]) -> None:
    image, source = golden["input_image_u8_hwc"], golden["input_first_coeff_3dmm"]
    with pytest.raises(ValueError, match="uint8"):
        prepare_render_inputs(image[:200], source, golden["input_generated_coeff_3dmm"])
    with pytest.raises(ValueError, match="73 columns"):
        prepare_render_inputs(image, source[:, :70], golden["input_generated_coeff_3dmm"], full=True)
    with pytest.raises(ValueError, match="generated"):
        prepare_render_inputs(image, source, np.zeros((0, 70), np.float32))
