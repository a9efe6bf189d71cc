"""SadTalker stage 1 geometry: source crop (five preprocess modes) and the 224 alignment for the recon net."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from lipsync_sadtalker.alignment import (
    ALIGNED_SIZE,
    align_for_recon,
    aligned_landmarks,
    five_points,
    standard_five_points,
    standard_landmarks_3d,
    to_y_up,
)
from lipsync_sadtalker.crop import PREPROCESS_MODES, apply_crop, crop_source, plan_crop
from standin import load_golden

RTOL = 1e-6  # reference/sadtalker/README.md: quad and trans_params; boxes, sizes and images are exact
SIZE = 256
GOLDEN_MODES = ("crop", "extcrop")


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_align.npz")


@pytest.fixture(scope="module")
def facts(sadtalker_data: Path) -> dict:
    return json.loads((sadtalker_data / "facts_sadtalker.json").read_text())


def _face_landmarks(centre: tuple[float, float], scale: float) -> np.ndarray:
    """The standard face's 68 points as image landmarks (y down), like the golden's input but noise-free."""
    xy = standard_landmarks_3d()[:, :2].astype(np.float64)
    return np.stack([centre[0] + scale * xy[:, 0], centre[1] - scale * xy[:, 1]], axis=1).astype(np.float32)


def _coordinate_image(width: int, height: int) -> np.ndarray:
    """Channel 0 encodes x, channel 1 encodes y (0..255 over the frame)."""
    xs = np.linspace(0, 255, width)[None, :].repeat(height, axis=0)
    ys = np.linspace(0, 255, height)[:, None].repeat(width, axis=1)
    return np.rint(np.stack([xs, ys, np.zeros_like(xs)], axis=2)).astype(np.uint8)


def test_package_landmarks_equal_the_official_table(facts: dict, golden: dict[str, np.ndarray]) -> None:
    table = facts["similarity_Lm3D_all"]
    expected = np.asarray(table["lm68_xyz"], dtype=np.float32)
    assert standard_landmarks_3d().dtype == np.float32
    np.testing.assert_array_equal(standard_landmarks_3d(), expected)
    np.testing.assert_array_equal(standard_five_points(), golden["lm3d_std_5x3"])
    np.testing.assert_array_equal(standard_five_points(), np.asarray(table["lm5_xyz_float64"]))


@pytest.mark.parametrize("mode", GOLDEN_MODES)
def test_crop_geometry_matches_golden(golden: dict[str, np.ndarray], mode: str) -> None:
    height, width = golden["input_image_u8_hwc_rgb"].shape[:2]
    info = plan_crop(golden["input_lm68_detector_xy"], (width, height), mode)

    assert info.crop_box == tuple(golden[f"{mode}_crop_box_clx_cly_crx_cry"].tolist())
    np.testing.assert_allclose(info.quad, golden[f"{mode}_quad_lx_ly_rx_ry"], rtol=RTOL, atol=0)
    assert info.face_size == tuple(golden[f"{mode}_crop_info_size_wh"].tolist())
    assert info.as_official() == (info.face_size, info.crop_box, info.quad)
    assert (info.shrink, info.working_size, info.image_size) == (1, (width, height), (width, height))


@pytest.mark.parametrize("mode", GOLDEN_MODES)
def test_cropped_source_frame_matches_golden(golden: dict[str, np.ndarray], mode: str) -> None:
    frame, info = crop_source(golden["input_image_u8_hwc_rgb"], golden["input_lm68_detector_xy"], mode, SIZE)
    assert frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, golden[f"{mode}_crop256_u8_rgb"])
    assert info.mode == mode


@pytest.mark.parametrize(("full_mode", "crop_mode"), [("full", "crop"), ("extfull", "extcrop")])
def test_full_modes_cut_like_their_crop_modes(
    golden: dict[str, np.ndarray], full_mode: str, crop_mode: str
) -> None:
    image, landmarks = golden["input_image_u8_hwc_rgb"], golden["input_lm68_detector_xy"]
    full_frame, full = crop_source(image, landmarks, full_mode, SIZE)
    crop_frame, crop = crop_source(image, landmarks, crop_mode, SIZE)

    np.testing.assert_array_equal(full_frame, crop_frame)
    assert full.as_official() == crop.as_official()
    clx, cly, crx, cry = crop.crop_box
    if full.extended:  # the paste-back region is the bordered box
        assert full.region == full.region_in_image == (clx, cly, crx, cry)
    else:  # the tight face square: crop origin + truncated quad
        lx, ly, rx, ry = (int(v) for v in crop.quad)
        assert full.region == full.region_in_image == (clx + lx, cly + ly, clx + rx, cly + ry)


def test_resize_mode_squashes_the_whole_frame() -> None:
    image = _coordinate_image(300, 200)
    frame, info = crop_source(image, None, "resize", SIZE)

    np.testing.assert_array_equal(frame, cv2.resize(image, (SIZE, SIZE)))
    assert info.crop_box is None and info.quad is None
    assert info.as_official() == ((300, 200), None, None)
    assert info.region == info.region_in_image == (0, 0, 300, 200)
    assert not info.extended and info.shrink == 1


@pytest.mark.parametrize("mode", ["crop", "extcrop"])
def test_huge_face_is_cropped_from_a_shrunk_frame(mode: str) -> None:
    width, height = 2600, 2800
    landmarks = _face_landmarks((1300, 1450), 900)  # face square side ~2290 px -> shrink by 2
    image = _coordinate_image(width, height)
    frame, info = crop_source(image, landmarks, mode, SIZE)

    assert info.shrink == 2
    assert info.working_size == (1300, 1400)
    # Same geometry as planning on the half-resolution problem (up to float rounding at box edges).
    half = plan_crop(landmarks / 2, info.working_size, mode)
    assert np.abs(np.subtract(info.crop_box, half.crop_box)).max() <= 1
    np.testing.assert_allclose(info.quad, half.quad, atol=1e-2)
    # The frame shows what region_in_image names, in input-frame pixels.
    x1, y1, x2, y2 = info.region_in_image
    assert info.region_in_image == tuple(2 * v for v in info.region)
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    for (row, col), (x, y) in {(0, 0): (x1, y1), (-1, -1): (x2 - 1, y2 - 1)}.items():
        assert abs(int(frame[row, col, 0]) - 255 * x / (width - 1)) <= 2
        assert abs(int(frame[row, col, 1]) - 255 * y / (height - 1)) <= 2


def test_face_below_shrink_threshold_is_not_shrunk() -> None:
    info = plan_crop(_face_landmarks((900, 900), 500), (1800, 1800), "crop")  # side ~1270: floor(1.24) = 1
    assert info.shrink == 1 and info.working_size == info.image_size


def test_quad_bottom_is_clamped_with_the_width_like_upstream() -> None:
    # A face that reaches below the bottom of a wide, short frame.
    width, height = 600, 200
    info = plan_crop(_face_landmarks((300, 150), 80), (width, height), "crop")
    assert info.crop_box[3] == height  # the bordered box is clamped to the frame ...
    assert height < info.quad[3] <= width  # ... the tight box's bottom only to the width (upstream quirk)
    frame = apply_crop(_coordinate_image(width, height), info, SIZE)  # slicing stops at the frame edge
    assert frame.shape == (SIZE, SIZE, 3)
    assert info.face_size[1] == int(info.quad[3]) - int(info.quad[1])


def test_invalid_requests_are_rejected() -> None:
    landmarks = _face_landmarks((150, 160), 80)
    with pytest.raises(ValueError, match="unknown preprocess mode"):
        plan_crop(landmarks, (300, 320), "square")
    with pytest.raises(ValueError, match="needs the 68 face landmarks"):
        plan_crop(None, (300, 320), "crop")
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        plan_crop(landmarks[:5], (300, 320), "crop")
    info = plan_crop(landmarks, (300, 320), "crop")
    with pytest.raises(ValueError, match="planned for"):
        apply_crop(np.zeros((320, 301, 3), np.uint8), info, SIZE)
    assert set(PREPROCESS_MODES) == {"crop", "extcrop", "resize", "full", "extfull"}


@pytest.mark.parametrize("mode", GOLDEN_MODES)
def test_y_flip_and_five_points_match_golden(golden: dict[str, np.ndarray], mode: str) -> None:
    flipped = to_y_up(golden[f"{mode}_lm256_given"], SIZE)
    np.testing.assert_array_equal(flipped, golden[f"{mode}_lm_into_align_img_yflipped"])
    np.testing.assert_array_equal(five_points(flipped), golden[f"{mode}_extract_5p"])


@pytest.mark.parametrize("mode", GOLDEN_MODES)
def test_alignment_matches_golden(golden: dict[str, np.ndarray], mode: str) -> None:
    aligned, params = align_for_recon(golden[f"{mode}_crop256_u8_rgb"], golden[f"{mode}_lm256_given"])

    assert aligned.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3) and aligned.dtype == np.uint8
    np.testing.assert_array_equal(aligned, golden[f"{mode}_aligned224_u8_rgb"])
    np.testing.assert_allclose(
        params.as_array(), golden[f"{mode}_trans_params_w0_h0_s_tx_ty"], rtol=RTOL, atol=0
    )
    # The landmarks in the aligned frame, stored by the reference as float32.
    moved = aligned_landmarks(golden[f"{mode}_lm_into_align_img_yflipped"], params)
    np.testing.assert_array_equal(moved.astype(np.float32), golden[f"{mode}_lm_new_224"])


def test_alignment_without_landmarks_centres_the_standard_face() -> None:
    # Upstream's fallback: the standard five points spread over the frame (x, y in [-1, 1] -> [0, size]).
    image = _coordinate_image(SIZE, SIZE)
    aligned, params = align_for_recon(image, None)

    assert aligned.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3)
    np.testing.assert_allclose(
        params.as_array(), [SIZE, SIZE, 102 / (SIZE / 2), SIZE / 2, SIZE / 2], rtol=1e-5, atol=1e-4
    )


def test_alignment_zero_fills_outside_the_image() -> None:
    # A small face near the top-left corner: the 224 window starts ~30 px before the image does.
    landmarks = _face_landmarks((20, 20), 25)
    aligned, params = align_for_recon(np.full((SIZE, SIZE, 3), 200, np.uint8), landmarks)
    assert params.scale == pytest.approx(102 / 25, rel=1e-3)
    assert (aligned[:20, :20] == 0).all()
    assert (aligned[40:, 40:] == 200).all()
