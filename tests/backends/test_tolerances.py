"""The parity tolerance rule (tolerances.py), on the case of issue 8: degree_pitch on an AMD EPYC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from standin import load_golden
from tolerances import MIN_STEPS, assert_parity, check_atol, float32_spacing, float32_steps

DEGREE_ATOL = 1e-4  # reference/sadtalker/README.md (corrected): keypoint_transformation degree_*
ISSUE_8_ACTUAL = np.float32(32.322617)  # degree_pitch[0] on the AMD EPYC; the golden holds 32.322601


@pytest.fixture(scope="module")
def degrees(sadtalker_data: Path) -> dict[str, np.ndarray]:
    golden = load_golden(sadtalker_data / "golden_keypoint_transformation.npz")
    return {angle: golden[f"degree_{angle}"] for angle in ("yaw", "pitch", "roll")}


def test_spacing_and_steps() -> None:
    assert float32_spacing([1.0, -0.5]) == 2.0**-23
    assert float32_spacing(np.array([-99.0, 3.0])) == 2.0**-17  # 64 <= 99 < 128
    assert float32_steps([32.32], 8) == 8 * 2.0**-18
    assert float32_spacing(np.zeros(3)) == float(np.spacing(np.float32(0)))


def test_the_old_degree_atol_is_refused_the_readme_one_holds_on_the_amd_value(
    degrees: dict[str, np.ndarray],
) -> None:
    pitch = degrees["pitch"]
    assert pitch[0] == np.float32(32.322601)
    steps = (ISSUE_8_ACTUAL - pitch[0]) / float32_spacing(pitch)
    assert steps == 4  # four float32 steps apart, as the issue says
    with pytest.raises(AssertionError, match=r"atol 1e-05 is 2\.6 float32 steps at \|golden\| = 32\.3226"):
        check_atol(pitch, 1e-5, "degree_pitch")
    with pytest.raises(AssertionError):  # the old check itself fails on that machine's value
        np.testing.assert_allclose([ISSUE_8_ACTUAL, pitch[1]], pitch, rtol=0, atol=1e-5)
    assert_parity(np.array([ISSUE_8_ACTUAL, pitch[1]]), pitch, DEGREE_ATOL, "degree_pitch")
    for angle, values in degrees.items():
        check_atol(values, DEGREE_ATOL, f"degree_{angle}")
    check_atol([-99.0, 96.0], DEGREE_ATOL)  # the README's whole range: 13 steps at 99


def test_parity_still_catches_real_errors(degrees: dict[str, np.ndarray]) -> None:
    pitch = degrees["pitch"]
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 2"):
        assert_parity(pitch + np.float32([2e-4, 0]), pitch, DEGREE_ATOL, "degree_pitch")
    with pytest.raises(AssertionError, match="shape"):
        assert_parity(pitch[:1], pitch, DEGREE_ATOL)


def test_floor_is_min_steps_at_the_largest_magnitude() -> None:
    golden = np.array([0.001, -2.5], np.float32)
    check_atol(golden, MIN_STEPS * 2.0**-22)  # |2.5| lies in [2, 4): one step is 2**-22
    with pytest.raises(AssertionError):
        check_atol(golden, (MIN_STEPS - 1) * 2.0**-22)
