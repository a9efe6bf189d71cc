"""DWPose (RTMPose-l) against the official mmpose run: keys, network, warp, flip test, decode, landmarks.

Tolerances from tests/data/musetalk/README.md: backbone stages atol 1e-5, head and SimCC logits atol 1e-6
(values ~1e-2), decode and scores exact, keypoints exact except the x of the 11 self-symmetric keypoints,
whose flip-averaged x logits tie between bins i and 575 - i with stand-in weights.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from face_fixtures import MUSETALK_DATA, dwpose, dwpose_net, dwpose_state_dict, golden
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_musetalk.dwpose import FACE, FLIP_INDICES, DWPose, RTMPose, load_dwpose
from lipsync_musetalk.dwpose.simcc import decode, merge_flip_test
from lipsync_musetalk.dwpose.topdown import box_frame, normalise, warp_matrix, warp_to_input
from tolerances import assert_parity

__all__ = ["dwpose", "dwpose_net"]  # fixtures used here

STAGE_ATOL = 1e-5
SIMCC_ATOL = 1e-6
X_BINS = 576


@pytest.fixture(scope="module")
def pose() -> dict[str, np.ndarray]:
    return golden("golden_dwpose")


@pytest.fixture(scope="module")
def net_golden() -> dict[str, np.ndarray]:
    return golden("golden_dwpose_net")


def test_parameters_are_named_shaped_and_typed_as_mmpose_state_dict() -> None:
    schema = json.loads((MUSETALK_DATA / "schema_dwpose.json").read_text())
    expected = {key: (tuple(shape), dtype) for key, shape, dtype in schema["state_dict"]}
    net = RTMPose()
    actual = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
    assert actual == expected
    assert sum(p.numel() for p in net.parameters()) == schema["num_parameters"]


@pytest.mark.parametrize("stage", ["stem", "stage1", "stage2", "stage3", "stage4"])
def test_backbone_stages_match_official(
    dwpose_net: RTMPose, net_golden: dict[str, np.ndarray], stage: str
) -> None:
    x = torch.from_numpy(net_golden["backbone_input"])
    with torch.inference_mode():
        for name in ("stem", "stage1", "stage2", "stage3", "stage4"):
            x = getattr(dwpose_net.backbone, name)(x)
            if name == stage:
                break
    assert_parity(x.numpy(), net_golden[f"backbone_{stage}"], STAGE_ATOL, stage)


def test_head_matches_official(dwpose_net: RTMPose, net_golden: dict[str, np.ndarray]) -> None:
    with torch.inference_mode():
        simcc_x, simcc_y = dwpose_net.head(torch.from_numpy(net_golden["head_input"]))
    assert_parity(simcc_x.numpy(), net_golden["head_simcc_x"], SIMCC_ATOL, "simcc_x")
    assert_parity(simcc_y.numpy(), net_golden["head_simcc_y"], SIMCC_ATOL, "simcc_y")


def test_flip_indices_are_coco_wholebody(pose: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(FLIP_INDICES, pose["flip_indices"])
    assert [FLIP_INDICES[FLIP_INDICES[i]] for i in range(133)] == list(range(133))


def test_whole_frame_box_and_warp_matrix_match_mmpose(pose: dict[str, np.ndarray]) -> None:
    height, width = pose["input_image_bgr"].shape[:2]
    frame = box_frame(np.array([0, 0, width, height]))
    np.testing.assert_array_equal(frame.center, pose["bbox_center"][0])
    np.testing.assert_array_equal(frame.scale, pose["bbox_scale"][0])
    np.testing.assert_array_equal(warp_matrix(frame), pose["warp_matrix"])


def test_warp_matches_official_opencv4(pose: dict[str, np.ndarray]) -> None:
    """Exact with OpenCV 4.x, as MuseTalk pins; OpenCV 5 interpolates in float and differs by up to 6."""
    warped = warp_to_input(pose["input_image_bgr"], pose["warp_matrix"])
    difference = np.abs(warped.astype(np.int16) - pose["warped_bgr_u8"])
    if int(cv2.__version__.split(".")[0]) < 5:
        assert difference.max() == 0
    else:
        assert difference.max() <= 6


def test_network_passes_and_flip_average_match_official(
    dwpose_net: RTMPose, pose: dict[str, np.ndarray]
) -> None:
    inputs = normalise(pose["warped_bgr_u8"])
    with torch.inference_mode():
        features = dwpose_net.backbone(inputs)
        x, y = dwpose_net.head(features)
        x_flip, y_flip = dwpose_net(inputs.flip(-1))
        x_avg, y_avg = merge_flip_test(x, y, x_flip, y_flip)
        x_both, y_both = dwpose_net.flip_test(inputs)
    assert_parity(features.numpy(), pose["backbone_out"], STAGE_ATOL, "backbone_out")
    for name, value in [
        ("simcc_x", x),
        ("simcc_y", y),
        ("simcc_x_flippedpass", x_flip),
        ("simcc_y_flippedpass", y_flip),
        ("simcc_x_avg", x_avg),
        ("simcc_y_avg", y_avg),
    ]:
        assert_parity(value.numpy(), pose[name], SIMCC_ATOL, name)
    assert_parity(x_both.numpy(), pose["simcc_x_avg"], SIMCC_ATOL, "flip_test x")
    assert_parity(y_both.numpy(), pose["simcc_y_avg"], SIMCC_ATOL, "flip_test y")


def test_decode_of_official_logits_is_exact(pose: dict[str, np.ndarray]) -> None:
    keypoints, scores = decode(pose["simcc_x_avg"], pose["simcc_y_avg"])
    np.testing.assert_array_equal(keypoints, pose["keypoints_input_space"])
    np.testing.assert_array_equal(scores, pose["scores"])


def test_decode_takes_first_maximum_and_drops_nonpositive_scores() -> None:
    simcc_x = np.zeros((1, 2, 6), np.float32)
    simcc_y = np.zeros((1, 2, 4), np.float32)
    simcc_x[0, 0, [2, 4]] = 0.5  # a tie: the first index wins
    simcc_y[0, 0, 3] = 0.25
    simcc_x[0, 1, 1] = -0.1  # keypoint 1: every logit <= 0
    keypoints, scores = decode(simcc_x, simcc_y)
    np.testing.assert_array_equal(keypoints, [[[1.0, 1.5], [-0.5, -0.5]]])
    np.testing.assert_array_equal(scores, [[0.25, 0.0]])


def test_keypoints_map_back_to_frame_pixels(pose: dict[str, np.ndarray]) -> None:
    height, width = pose["input_image_bgr"].shape[:2]
    keypoints = box_frame(np.array([0, 0, width, height])).to_frame(pose["keypoints_input_space"])
    np.testing.assert_array_equal(keypoints.astype(np.float32), pose["keypoints"])
    np.testing.assert_array_equal(keypoints[0, FACE].astype(np.int32), pose["face_landmarks_int32"])


def _tied_x(pose: dict[str, np.ndarray]) -> np.ndarray:
    """Per keypoint, whether its x may legitimately come out mirrored (self-symmetric ones)."""
    tied = np.zeros(133, dtype=bool)
    tied[pose["self_symmetric_keypoints"]] = True
    return tied


def test_keypoints_end_to_end_match_official(dwpose: DWPose, pose: dict[str, np.ndarray]) -> None:
    image = pose["input_image_bgr"]
    other = np.ascontiguousarray(image[::-1])
    keypoints, scores = dwpose.keypoints([image, other], batch_size=2)
    assert keypoints.shape == (2, 133, 2) and scores.shape == (2, 133)
    tied = _tied_x(pose)
    got, want = keypoints[0].astype(np.float32), pose["keypoints"][0]
    np.testing.assert_array_equal(got[:, 1], want[:, 1])
    np.testing.assert_array_equal(got[~tied, 0], want[~tied, 0])
    # A tied x is bin i or its mirror 575 - i: frame x = (bin / 2) / 288 * 200 + 80 - 100.
    bins = np.rint((want[tied, 0] + 20.0) / 200.0 * 288.0 * 2.0)
    mirrored = ((X_BINS - 1 - bins) / 2.0 / 288.0 * 200.0 - 20.0).astype(np.float32)
    assert np.all((got[tied, 0] == want[tied, 0]) | (np.abs(got[tied, 0] - mirrored) < 1e-4))
    whole_frame = (0, 0, image.shape[1], image.shape[0])
    alone = dwpose.keypoints([image], whole_frame)[0][0]  # batch of 1: a tied x may fall either way
    np.testing.assert_array_equal(alone[:, 1], keypoints[0, :, 1])
    np.testing.assert_array_equal(alone[~tied, 0], keypoints[0, ~tied, 0])
    # A frame's keypoints do not depend on the other frames of its batch.
    np.testing.assert_allclose(keypoints[1], dwpose.keypoints([other])[0][0], atol=1e-3)
    assert dwpose.keypoints([])[0].shape == (0, 133, 2)


def test_face_landmarks_are_keypoints_23_to_90(dwpose: DWPose, pose: dict[str, np.ndarray]) -> None:
    landmarks = dwpose.landmarks_batch([pose["input_image_bgr"]])
    assert landmarks.shape == (1, 68, 2)
    np.testing.assert_array_equal(dwpose.landmarks(pose["input_image_bgr"]), landmarks[0])
    face_tied = _tied_x(pose)[FACE]
    np.testing.assert_array_equal(landmarks[0][:, 1].astype(np.int32), pose["face_landmarks_int32"][:, 1])
    np.testing.assert_array_equal(
        landmarks[0][~face_tied, 0].astype(np.int32), pose["face_landmarks_int32"][~face_tied, 0]
    )


def test_frames_of_different_sizes_are_refused(dwpose: DWPose) -> None:
    with pytest.raises(ValueError, match="one size"):
        dwpose.keypoints([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)])
    with pytest.raises(ValueError, match="BGR"):
        dwpose.landmarks(np.zeros((8, 8), np.uint8))


def test_load_dwpose_reads_the_mmengine_checkpoint_layout(tmp_path: Path) -> None:
    path = tmp_path / "dw-ll_ucoco_384.pth"
    state = dwpose_state_dict()
    torch.save({"meta": {"epoch": 270}, "state_dict": state, "optimizer": {"state": {}}}, path)
    loaded = load_dwpose(path, "cpu")
    assert not loaded.net.training
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, state[key]), key


class _Trap:
    """Pickles as a call of ``shutil.copyfile``: a loader that runs the file's code would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (shutil.copyfile, (__file__, str(self.path)))


def test_load_dwpose_reads_weights_beside_training_state_without_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mmengine checkpoints keep numpy arrays in ``meta`` and HistoryBuffer objects in ``message_hub``;
    plain ``weights_only`` refuses them. They are read inert: nothing named in the file runs."""
    history = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self, values: list[float]) -> None:
            self._log_history = np.asarray(values)

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = history.__name__, "HistoryBuffer"
    history.HistoryBuffer = HistoryBuffer  # type: ignore[attr-defined]
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, history.__name__, history)
    trap = tmp_path / "ran"
    checkpoint = {
        "meta": {"dataset_meta": {"sigmas": np.linspace(0.1, 0.2, 133)}, "seed": 21, "trap": _Trap(trap)},
        "state_dict": dwpose_state_dict(),
        "message_hub": {"log_scalars": {"train/loss": HistoryBuffer([0.5, 0.4])}},
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"betas": (0.9, 0.999)}]},
    }
    path = tmp_path / "dw-ll_ucoco_384.pth"
    torch.save(checkpoint, path)
    monkeypatch.undo()  # mmengine is gone again, as in the backend env
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)
    loaded = load_dwpose(path, "cpu")
    assert not trap.exists()
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, dwpose_state_dict()[key]), key


def test_load_dwpose_refuses_a_checkpoint_with_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "partial.pth"
    state = dict(dwpose_state_dict())
    del state["head.gau.uv.weight"]
    torch.save({"state_dict": state}, path)
    with pytest.raises(BackendError) as caught:
        load_dwpose(path, "cpu")
    assert caught.value.code == ErrorCode.BAD_CHECKPOINT
    assert "head.gau.uv.weight" in str(caught.value)
    with pytest.raises(BackendError) as missing:
        load_dwpose(tmp_path / "absent.pth", "cpu")
    assert missing.value.code == ErrorCode.WEIGHTS_MISSING
