"""Blending the generated face back into the frame against the official ``get_image`` and realtime pair.

Exact (uint8) throughout, as tests/data/musetalk/README.md states for the same PIL/OpenCV operations: crop
boxes, blur kernels, masks before and after the blur, and the final frames, for a box inside the frame and
one whose crop crosses the frame's border, in each parsing mode, with the stand-in BiSeNet and with the
designed label map.
"""

from __future__ import annotations

import numpy as np
import pytest
from face_fixtures import DesignedLabels, bisenet, face_parser, golden
from lipsync_musetalk.blending import (
    REALTIME_BLUR_RATIO,
    blend_face,
    blend_mask,
    blend_masks,
    blur_kernel_size,
    crop_box,
    face_region_mask,
    padded_crop,
    paste_face,
)
from lipsync_musetalk.face_box import FaceBox
from lipsync_musetalk.parsing import FaceParser
from PIL import Image

__all__ = ["bisenet", "face_parser"]  # fixtures used here

CASES = [("in", "raw"), ("in", "neck"), ("in", "jaw"), ("edge", "jaw")]


@pytest.fixture(scope="module")
def blending() -> dict[str, np.ndarray]:
    return golden("golden_blending")


def _box(blending: dict[str, np.ndarray], name: str) -> FaceBox:
    return FaceBox(*blending[f"{name}_box_xyxy"].tolist())


@pytest.mark.parametrize(("name", "normal", "realtime"), [("in", 7, 15), ("edge", 9, 17)])
def test_crop_boxes_and_blur_kernels(
    blending: dict[str, np.ndarray], name: str, normal: int, realtime: int
) -> None:
    crop = crop_box(_box(blending, name))
    assert list(crop) == blending[f"{name}_crop_box"].tolist() == blending[f"{name}_rt_crop_box"].tolist()
    width = crop[2] - crop[0]
    assert (blur_kernel_size(width, 0.05), blur_kernel_size(width, REALTIME_BLUR_RATIO)) == (normal, realtime)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_mask_kept_in_the_box_below_the_middle(blending: dict[str, np.ndarray], name: str, mode: str) -> None:
    box = _box(blending, name)
    crop = crop_box(box)
    side = crop[2] - crop[0]
    parsed = Image.fromarray(blending[f"{name}_{mode}_mask512"]).resize((side, side), Image.BICUBIC)
    mask = face_region_mask(np.asarray(parsed), box, crop)
    np.testing.assert_array_equal(mask, blending[f"{name}_{mode}_mask_preblur"])


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_normal_mode_blend_matches_get_image(
    face_parser: FaceParser, blending: dict[str, np.ndarray], name: str, mode: str
) -> None:
    frame = blending["frame_bgr"]
    before = frame.copy()
    box = _box(blending, name)
    blend = blend_mask(frame, box, face_parser, mode)
    np.testing.assert_array_equal(blend.mask, blending[f"{name}_{mode}_mask_blurred"])
    out = paste_face(frame, blending[f"{name}_face_bgr"], box, blend)
    np.testing.assert_array_equal(out, blending[f"{name}_{mode}_out_bgr"])
    np.testing.assert_array_equal(frame, before)
    # Only pixels under the mask change: outside the crop, and where the mask is 0, the frame is kept.
    x1, y1 = blend.crop_box[:2]
    covered = np.zeros(frame.shape[:2], bool)
    rows, cols = np.nonzero(blend.mask)
    inside = (rows + y1 >= 0) & (rows + y1 < frame.shape[0]) & (cols + x1 >= 0) & (cols + x1 < frame.shape[1])
    covered[rows[inside] + y1, cols[inside] + x1] = True
    np.testing.assert_array_equal(out[~covered], frame[~covered])
    assert (out != frame).any()


@pytest.mark.parametrize(
    "crop",
    [(-22, 13, 142, 177), (150, -30, 260, 80), (25, 5, 175, 155), (-50, -50, -10, -10), (190, 150, 300, 400)],
)
def test_padded_crop_is_pil_crop(blending: dict[str, np.ndarray], crop: tuple[int, int, int, int]) -> None:
    frame = blending["frame_bgr"]
    np.testing.assert_array_equal(padded_crop(frame, crop), np.asarray(Image.fromarray(frame).crop(crop)))


def _pil_paste(
    frame: np.ndarray, face: np.ndarray, box: FaceBox, mask: np.ndarray, crop: tuple
) -> np.ndarray:
    """The official whole-frame PIL paste, written out plainly as the oracle."""
    body = Image.fromarray(frame[:, :, ::-1].copy())
    large = body.crop(crop)
    large.paste(Image.fromarray(face[:, :, ::-1].copy()), (box.x1 - crop[0], box.y1 - crop[1]))
    body.paste(large, crop[:2], Image.fromarray(mask))
    return np.asarray(body)[:, :, ::-1]


def test_a_box_past_the_frame_edge_blends_inside_the_frame(
    face_parser: FaceParser, blending: dict[str, np.ndarray]
) -> None:
    """S3FD boxes are clipped at 0 only, so a face box may run past the right and bottom edges."""
    frame = blending["frame_bgr"]
    box = FaceBox(150, 110, 230, 200)  # frame is 200 wide, 160 high
    face = np.full((box.y2 - box.y1, box.x2 - box.x1, 3), 255, np.uint8)
    blend = blend_mask(frame, box, face_parser, "raw")
    out = paste_face(frame, face, box, blend)
    np.testing.assert_array_equal(out, _pil_paste(frame, face, box, blend.mask, blend.crop_box))
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:110], frame[:110])  # above the box nothing moves
    np.testing.assert_array_equal(out[:, :150], frame[:, :150])
    assert (out != frame).any()


def test_blend_face_is_get_image(face_parser: FaceParser, blending: dict[str, np.ndarray]) -> None:
    out = blend_face(blending["frame_bgr"], blending["in_face_bgr"], _box(blending, "in"), face_parser, "jaw")
    np.testing.assert_array_equal(out, blending["in_jaw_out_bgr"])


@pytest.mark.parametrize("name", ["in", "edge"])
def test_realtime_material_and_blending_match_official(
    face_parser: FaceParser, blending: dict[str, np.ndarray], name: str
) -> None:
    box = _box(blending, name)
    blend = blend_mask(blending["frame_bgr"], box, face_parser, "jaw", REALTIME_BLUR_RATIO)
    np.testing.assert_array_equal(blend.mask, blending[f"{name}_rt_mask"])
    assert list(blend.crop_box) == blending[f"{name}_rt_crop_box"].tolist()
    out = paste_face(blending["frame_bgr"], blending[f"{name}_face_bgr"], box, blend)
    np.testing.assert_array_equal(out, blending[f"{name}_rt_out_bgr"])


def test_masks_of_many_frames_in_one_parser_batch(
    face_parser: FaceParser, blending: dict[str, np.ndarray]
) -> None:
    frame = blending["frame_bgr"]
    boxes = [_box(blending, "in"), _box(blending, "edge"), _box(blending, "in")]
    masks = blend_masks([frame, frame, frame[::-1].copy()], boxes, face_parser, "jaw", batch_size=2)
    np.testing.assert_array_equal(masks[0].mask, blending["in_jaw_mask_blurred"])
    np.testing.assert_array_equal(masks[1].mask, blending["edge_jaw_mask_blurred"])
    assert masks[2].crop_box == masks[0].crop_box
    assert not np.array_equal(masks[2].mask, masks[0].mask)  # another frame, another mask
    assert blend_masks([], [], face_parser) == []


def test_designed_face_map_blends_as_official(blending: dict[str, np.ndarray]) -> None:
    parser = FaceParser(DesignedLabels(blending["syn_labels512"]), 90, 90, "cpu")
    frame, face, box = blending["frame_bgr"], blending["in_face_bgr"], _box(blending, "in")
    np.testing.assert_array_equal(blend_face(frame, face, box, parser, "jaw"), blending["syn_in_jaw_out_bgr"])
    realtime = blend_mask(frame, box, parser, "jaw", REALTIME_BLUR_RATIO)
    np.testing.assert_array_equal(realtime.mask, blending["syn_in_rt_mask"])
    np.testing.assert_array_equal(paste_face(frame, face, box, realtime), blending["syn_in_rt_out_bgr"])
