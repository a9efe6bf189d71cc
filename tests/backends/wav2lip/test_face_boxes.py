"""Face boxes: official padding, clipping and smoothing (golden_chunks.json box_cases); faceless frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import DATA_DIR
from lipsync_kit.s3fd import S3FD, FaceDetector
from lipsync_kit.s3fd.net import SOURCES
from lipsync_wav2lip.face_boxes import crop_coords, pad_and_clip, smooth_boxes
from standin import load_golden, standin_state_dict

BOX_CASES: list[dict[str, Any]] = json.loads((DATA_DIR / "wav2lip" / "golden_chunks.json").read_text())[
    "box_cases"
]


@pytest.mark.parametrize("case", BOX_CASES, ids=[case["name"] for case in BOX_CASES])
def test_box_cases_match_official(case: dict[str, Any]) -> None:
    frame_hw = tuple(case["image_hw"])
    pads = tuple(case["pads_top_bottom_left_right"])
    coords = crop_coords(case["detector_boxes_x1y1x2y2"], frame_hw, pads, smooth=not case["nosmooth"])
    assert coords.dtype == np.int64
    assert coords.tolist() == case["output_coords_y1y2x1x2"]


def test_pad_and_clip_orders_coords_y1_y2_x1_x2() -> None:
    coords = pad_and_clip([(3, 4, 300, 200), (10, 20, 30, 40)], pads=(5, 6, 7, 8), frame_hw=(100, 250))
    assert coords.tolist() == [[0, 100, 0, 250], [15, 46, 3, 38]]


def _official_smoothing(boxes: np.ndarray, window: int) -> np.ndarray:
    """The official in-place loop, written out plainly as the oracle for the vectorised version."""
    boxes = boxes.copy()
    for i in range(len(boxes)):
        rows = boxes[len(boxes) - window :] if i + window > len(boxes) else boxes[i : i + window]
        boxes[i] = np.mean(rows, axis=0)
    return boxes


@pytest.mark.parametrize("n", range(13))
@pytest.mark.parametrize("window", [1, 2, 5])
def test_smoothing_matches_official_loop(n: int, window: int) -> None:
    boxes = np.random.default_rng(n).integers(0, 1000, size=(n, 4))
    np.testing.assert_array_equal(smooth_boxes(boxes, window), _official_smoothing(boxes, window))


def test_smoothing_leaves_its_input_alone() -> None:
    boxes = np.arange(24, dtype=np.int64).reshape(6, 4) ** 2
    before = boxes.copy()
    smooth_boxes(boxes)
    np.testing.assert_array_equal(boxes, before)


@pytest.fixture(scope="module")
def image_bgr(wav2lip_data: Path) -> np.ndarray:
    return load_golden(wav2lip_data / "golden_s3fd.npz")["images_bgr"][0]


@pytest.fixture(scope="module")
def standin(wav2lip_data: Path) -> dict[str, torch.Tensor]:
    return standin_state_dict(wav2lip_data / "schema_s3fd.json")


def _detector(state: dict[str, torch.Tensor]) -> FaceDetector:
    net = S3FD()
    net.load_state_dict(state, strict=True)
    return FaceDetector(net)


def test_no_face_gives_none(standin: dict[str, torch.Tensor], image_bgr: np.ndarray) -> None:
    assert _detector(standin).detect([image_bgr]) != [None]  # the frame does have a face
    faceless = {k: v.clone() for k, v in standin.items()}
    # Class logits become constants: background 0, face -30, so every face probability is ~1e-13.
    for name, _, n_cls, _ in SOURCES:
        faceless[f"{name}_mbox_conf.weight"].zero_()
        faceless[f"{name}_mbox_conf.bias"].copy_(torch.tensor([0.0] * (n_cls - 1) + [-30.0]))
    detector = _detector(faceless)
    assert detector.detect([image_bgr, image_bgr], batch_size=2) == [None, None]
    assert detector.detect_all([image_bgr])[0].shape == (0, 5)
