"""MuseTalk's landmark -> face box rule against the official ``get_landmark_and_bbox`` (exact)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from face_fixtures import DATA, bbox_cases, dwpose, dwpose_net, golden, s3fd_detector
from lipsync_kit.s3fd import S3FD, FaceDetector
from lipsync_kit.s3fd.net import MEAN_RGB
from lipsync_musetalk.dwpose import DWPose
from lipsync_musetalk.face_box import FaceBox, detect_face_boxes, face_box, landmark_box
from standin import standin_state_dict

__all__ = ["dwpose", "dwpose_net", "s3fd_detector"]  # fixtures used here

CASES = bbox_cases()
PLACEHOLDER = [0.0, 0.0, 0.0, 0.0]  # the official "no face" coordinates


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_box_cases_match_official(case: dict[str, Any]) -> None:
    landmarks = np.asarray(case["face_landmarks_float"], dtype=np.float32)
    s3fd_box = None if case["s3fd_first_box"] is None else tuple(case["s3fd_first_box"])
    box = face_box(landmarks, s3fd_box, bbox_shift=case["bbox_shift"])
    if case["output_x1y1x2y2"] == PLACEHOLDER:
        assert box is None
    else:
        assert isinstance(box, FaceBox)
        assert list(box) == case["output_x1y1x2y2"]
        assert all(type(value) is int for value in box)


def test_landmark_box_leaves_the_landmarks_alone() -> None:
    """The official shift edits landmark 29 in place; ours works on a copy."""
    landmarks = np.asarray(CASES[-1]["face_landmarks_float"], dtype=np.float32)
    before = landmarks.copy()
    assert landmark_box(landmarks, bbox_shift=7) != landmark_box(landmarks)
    np.testing.assert_array_equal(landmarks, before)


def test_half_face_rule_on_drawn_landmarks() -> None:
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[:, 0] = np.linspace(10.9, 50.2, 68)
    landmarks[:, 1] = 40.0
    landmarks[29] = (30.0, 42.6)  # nose bridge at y 42
    landmarks[8] = (30.0, 70.9)  # chin at y 70: 28 below the bridge, so the top is 42 - 28 = 14
    assert landmark_box(landmarks) == FaceBox(10, 14, 50, 70)
    assert landmark_box(landmarks, bbox_shift=-10) == FaceBox(10, 0, 50, 70)  # 32 - 38 clipped at 0
    # Shifted 40 down, the bridge (y 82) is itself the lowest point: the box has no height.
    assert landmark_box(landmarks, bbox_shift=40) is None
    landmarks[0, 0] = -0.99  # truncates to 0: still inside the frame
    assert landmark_box(landmarks) == FaceBox(0, 14, 50, 70)
    landmarks[0, 0] = -1.0
    assert landmark_box(landmarks) is None
    assert face_box(landmarks, (5, 6, 7, 8)) == FaceBox(5, 6, 7, 8)
    assert face_box(landmarks, None) is None
    assert face_box(landmarks, (0, 6, 0, 8)) is None  # an S3FD box clipped to nothing: no face


def test_official_end_to_end_box_with_standin_networks(dwpose: DWPose, s3fd_detector: FaceDetector) -> None:
    """The golden frame: its landmark box starts left of the frame, so the S3FD box is the face box."""
    pose = golden("golden_dwpose")
    frame = pose["input_image_bgr"]
    (s3fd_box,) = s3fd_detector.detect([frame])
    assert s3fd_box is not None and list(s3fd_box) == pose["s3fd_first_box_xyxy"].tolist()
    landmarks = dwpose.landmarks(frame)
    assert landmark_box(landmarks) is None
    assert list(face_box(landmarks, s3fd_box)) == pose["e2e_coords_xyxy"][0].tolist()


def test_detect_face_boxes_skips_frames_without_a_face(dwpose: DWPose) -> None:
    """S3FD with the stand-in weights but every bias zeroed: a frame of the mean colour is a zero input with
    all-zero features, so every face probability is exactly 0.5, not above the 0.5 threshold."""
    state = standin_state_dict(DATA / "wav2lip" / "schema_s3fd.json")
    net = S3FD()
    net.load_state_dict({k: torch.zeros_like(v) if k.endswith("bias") else v for k, v in state.items()})
    detector = FaceDetector(net.eval(), "cpu")
    pose = golden("golden_dwpose")
    frame = pose["input_image_bgr"]
    plain = np.empty_like(frame)
    plain[:] = np.array(MEAN_RGB, np.uint8)[::-1]  # BGR
    assert detector.detect([plain]) == [None]
    (s3fd_box,) = detector.detect([frame])
    assert s3fd_box is not None
    calls: list[tuple[int, int]] = []
    boxes = detect_face_boxes(
        [plain, frame, plain], dwpose, detector, batch_size=2, progress=lambda *a: calls.append(a)
    )
    assert calls == [(2, 3), (3, 3)]
    assert boxes[0] is None and boxes[2] is None
    assert boxes[1] == face_box(dwpose.landmarks(frame), s3fd_box)
    assert detect_face_boxes([plain], dwpose, detector) == [None]
