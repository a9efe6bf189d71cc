"""S3FD: official state-dict layout, raw outputs, decoding, NMS and API boxes against the official goldens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.s3fd import S3FD, Box, FaceDetector, LevelOutputs, best_faces, detect_faces, load_s3fd
from lipsync_kit.s3fd.boxes import decode_candidates, nms, preprocess
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity, float32_steps
from torch import Tensor, nn

# reference/wav2lip/README.md: raw outputs atol 1e-4 (float32 vs float64 noise up to 1.8e-5); candidates and
# detections: boxes atol 1e-3 px (16 float32 steps at the largest coordinate, 692 px), scores atol 1e-5.
RAW_ATOL = 1e-4
BOX_ATOL = 1e-3
SCORE_ATOL = 1e-5


@pytest.fixture(scope="module")
def schema(wav2lip_data: Path) -> Path:
    return wav2lip_data / "schema_s3fd.json"


@pytest.fixture(scope="module")
def golden(wav2lip_data: Path) -> dict[str, np.ndarray]:
    return load_golden(wav2lip_data / "golden_s3fd.npz")


@pytest.fixture(scope="module")
def net(schema: Path) -> S3FD:
    model = S3FD()
    model.load_state_dict(standin_state_dict(schema), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def outputs(net: S3FD, golden: dict[str, np.ndarray]) -> LevelOutputs:
    with torch.inference_mode():
        return net(preprocess(golden["images_bgr"]))


def assert_same_rows(actual: np.ndarray, expected: np.ndarray, box_atol: float, score_atol: float) -> None:
    """(N, 5) rows (x1, y1, x2, y2, score) equal as sets: each row matches a distinct expected row."""
    assert actual.shape == expected.shape
    targets = torch.from_numpy(expected[:, :4].astype(np.float64))
    chunks = torch.from_numpy(actual[:, :4].astype(np.float64)).split(512)
    nearest = torch.cat([torch.cdist(c, targets, p=float("inf")).argmin(dim=1) for c in chunks]).numpy()
    assert len(np.unique(nearest)) == len(actual), "several rows match the same expected row"
    matched = expected[nearest]
    if box_atol == score_atol == 0:
        np.testing.assert_array_equal(actual, matched)
        return
    assert_parity(actual[:, :4], matched[:, :4], box_atol, "boxes")
    assert_parity(actual[:, 4], matched[:, 4], score_atol, "scores")


def test_state_dict_matches_official_schema(schema: Path) -> None:
    model = S3FD()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == load_schema(schema)
    assert list(model.buffers()) == []


def test_preprocess_is_rgb_minus_mean(golden: dict[str, np.ndarray]) -> None:
    images = golden["images_bgr"]
    expected = (images[..., ::-1] - np.array([104, 117, 123])).transpose(0, 3, 1, 2).astype(np.float32)
    x = preprocess(images)
    assert x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), expected)


def test_raw_outputs_match_golden(outputs: LevelOutputs, golden: dict[str, np.ndarray]) -> None:
    assert len(outputs) == 6
    for level, (cls, reg) in enumerate(outputs, start=1):
        for name, value in ((f"cls{level}", cls), (f"reg{level}", reg)):
            assert_parity(value.numpy(), golden[name], RAW_ATOL, name)


@pytest.mark.parametrize("bias", [(3.0, 1.0, 2.0, 5.0), (1.0, 3.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0)])
def test_first_level_background_is_max_of_three(bias: tuple[float, ...]) -> None:
    # The stand-in goldens never have channel 2 as the largest background logit, so test the max-out alone.
    model = S3FD().eval()
    with torch.no_grad():
        model.conv3_3_norm_mbox_conf.weight.zero_()
        model.conv3_3_norm_mbox_conf.bias.copy_(torch.tensor(bias))
        cls = model(torch.zeros(1, 3, 32, 32))[0][0]
    assert cls.shape == (1, 2, 8, 8)
    assert torch.equal(cls, torch.tensor([3.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 8, 8))


@pytest.mark.parametrize("image", [0, 1])
def test_candidates_match_golden(outputs: LevelOutputs, golden: dict[str, np.ndarray], image: int) -> None:
    # The official batch result repeats each position once per image that triggered it; per image the
    # distinct rows above the threshold are what we decode.
    rows = golden["candidates"][:, image]
    expected = np.unique(rows[rows[:, 4] > 0.05], axis=0)
    actual = decode_candidates(outputs)[image].numpy()
    assert actual.dtype == np.float32
    assert_same_rows(actual, expected, BOX_ATOL, SCORE_ATOL)


@pytest.mark.parametrize("image", [0, 1])
def test_nms_matches_golden(golden: dict[str, np.ndarray], image: int) -> None:
    dets = golden["candidates"][:, image]
    keep = nms(dets, 0.3)
    kept = dets[keep]
    assert np.all(np.diff(kept[:, 4]) <= 0), "not highest score first"
    assert_same_rows(kept, dets[golden[f"nms_keep_img{image}"]], 0.0, 0.0)


@pytest.mark.parametrize("image", [0, 1])
def test_detections_match_golden(outputs: LevelOutputs, golden: dict[str, np.ndarray], image: int) -> None:
    actual = detect_faces(outputs)[image]
    assert np.all(np.diff(actual[:, 4]) <= 0), "not highest score first"
    assert_same_rows(actual, golden[f"detections_img{image}"], BOX_ATOL, BOX_ATOL)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_api_boxes_exact(net: S3FD, golden: dict[str, np.ndarray], batch_size: int) -> None:
    boxes = FaceDetector(net).detect(list(golden["images_bgr"]), batch_size=batch_size)
    assert all(isinstance(box, Box) for box in boxes)
    assert [tuple(box) for box in boxes] == [tuple(row) for row in golden["api_boxes_x1y1x2y2"].tolist()]


def test_load_s3fd_reads_a_bare_state_dict_file(
    schema: Path, golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """``s3fd-619a316812.pth`` is a bare state dict; `load_s3fd` loads it strictly, frozen, in eval mode."""
    path = tmp_path / "s3fd.pth"
    torch.save(standin_state_dict(schema), path)
    net = load_s3fd(path, "cpu")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    boxes = FaceDetector(net).detect(list(golden["images_bgr"]))
    assert [tuple(box) for box in boxes] == [tuple(row) for row in golden["api_boxes_x1y1x2y2"].tolist()]
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(BackendError) as info:
        load_s3fd(path, "cpu")
    assert info.value.code == ErrorCode.BAD_CHECKPOINT


def test_detect_all_takes_a_score_threshold(net: S3FD, golden: dict[str, np.ndarray]) -> None:
    images = list(golden["images_bgr"])
    default = FaceDetector(net).detect_all(images)
    for image, dets in enumerate(default):
        assert_same_rows(dets, golden[f"detections_img{image}"], BOX_ATOL, BOX_ATOL)
    cutoff = float(default[0][0, 4])  # the best score of the first image: it and weaker rows drop out
    stricter = FaceDetector(net).detect_all(images, score_threshold=cutoff)
    for strict, loose in zip(stricter, default, strict=True):
        np.testing.assert_array_equal(strict, loose[loose[:, 4] > cutoff])


def test_api_box_is_first_detection(outputs: LevelOutputs) -> None:
    for box, dets in zip(best_faces(outputs, (240, 320)), detect_faces(outputs), strict=True):
        assert box == Box(*np.clip(dets[0, :4], 0, None).astype(int).tolist())


ONE_HOT_HW = (16, 24)  # the frame size whose stride-4 level is 4 x 6


def _one_hot_outputs(face_logit: float) -> LevelOutputs:
    """Synthetic head outputs for one image: only level 2 (stride 8), cell (y=1, x=3) may be a face."""
    outputs = []
    for level, (h, w) in enumerate([(4, 6), (2, 4), (1, 2), (1, 1), (1, 1), (1, 1)]):
        cls = torch.zeros(1, 2, h, w)
        cls[:, 1] = -20.0
        reg = torch.zeros(1, 4, h, w)
        if level == 1:
            cls[0, 1, 1, 3] = face_logit
            reg[0, 0, 1, 3] = 1.0  # dx: centre moves by 0.1 * anchor side = 3.2 px
        outputs.append((cls, reg))
    return outputs


def test_best_face_anchor_decode_and_clip_at_zero_only() -> None:
    # Anchor: centre (8/2 + 3*8, 8/2 + 1*8) = (28, 12), side 4*8 = 32 -> (15.2, -4, 47.2, 28).
    assert best_faces(_one_hot_outputs(5.0), ONE_HOT_HW) == [Box(15, 0, 47, 28)]
    boxes = detect_faces(_one_hot_outputs(5.0))[0][:, :4]
    expected = np.array([[15.2, -4.0, 47.2, 28.0]])
    assert_parity(boxes, expected, float32_steps(expected, 16), "box")  # exp and scaling: a few steps


def test_best_face_skips_boxes_wholly_outside_the_frame() -> None:
    outputs = _one_hot_outputs(5.0)
    cls, reg = outputs[0]
    cls[0, 1, 0, 0] = 9.0  # a better score at stride-4 cell (0, 0) ...
    reg[0, 0, 0, 0] = 30.0  # ... whose box is shifted 48 px right, past the 24 px wide frame
    assert detect_faces(outputs)[0][0, 0] > ONE_HOT_HW[1]  # the official top detection lies outside
    assert best_faces(outputs, ONE_HOT_HW) == [Box(15, 0, 47, 28)]


def test_best_face_needs_score_above_half() -> None:
    assert best_faces(_one_hot_outputs(-0.01), ONE_HOT_HW) == [None]  # probability just below 0.5
    assert best_faces(_one_hot_outputs(0.01), ONE_HOT_HW) != [None]
    assert detect_faces(_one_hot_outputs(-0.01))[0].shape == (0, 5)


class _FailingNet(nn.Module):
    """Runs the real S3FD but raises ``error`` for batches larger than ``max_batch``; records batch sizes."""

    def __init__(self, net: S3FD, error: Exception, max_batch: int) -> None:
        super().__init__()
        self.net, self.error, self.max_batch = net, error, max_batch
        self.batch_sizes: list[int] = []

    def forward(self, x: Tensor) -> LevelOutputs:
        self.batch_sizes.append(x.shape[0])
        if x.shape[0] > self.max_batch:
            raise self.error
        return self.net(x)


def test_out_of_memory_halves_the_batch(net: S3FD, golden: dict[str, np.ndarray]) -> None:
    frames = [golden["images_bgr"][i % 2] for i in range(5)]
    failing = _FailingNet(net, torch.cuda.OutOfMemoryError("CUDA out of memory"), max_batch=2)
    boxes = FaceDetector(failing, device="cpu").detect(frames, batch_size=5)  # type: ignore[arg-type]
    assert failing.batch_sizes == [5, 2, 2, 1]
    api = [Box(*row) for row in golden["api_boxes_x1y1x2y2"].tolist()]
    assert boxes == [api[i % 2] for i in range(5)]


def test_out_of_memory_at_batch_one_is_a_backend_error(net: S3FD, golden: dict[str, np.ndarray]) -> None:
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory")
    failing = _FailingNet(net, oom, max_batch=0)
    with pytest.raises(BackendError) as info:
        FaceDetector(failing, device="cpu").detect(list(golden["images_bgr"]), batch_size=4)  # type: ignore[arg-type]
    assert failing.batch_sizes == [2, 1]
    assert info.value.code == ErrorCode.OUT_OF_MEMORY
    assert info.value.hint is not None and "--resize-factor" in info.value.hint
    assert info.value.__cause__ is oom


def test_other_runtime_errors_are_not_retried(net: S3FD, golden: dict[str, np.ndarray]) -> None:
    error = RuntimeError("CUDA error: an illegal memory access was encountered")
    failing = _FailingNet(net, error, max_batch=0)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        FaceDetector(failing, device="cpu").detect(list(golden["images_bgr"]), batch_size=2)  # type: ignore[arg-type]
    assert failing.batch_sizes == [2]


def test_frames_of_different_sizes_are_rejected(net: S3FD, golden: dict[str, np.ndarray]) -> None:
    frames = [golden["images_bgr"][0], golden["images_bgr"][1][:200]]
    with pytest.raises(ValueError, match="one size"):
        FaceDetector(net).detect(frames)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("full_fp32")
def test_cuda_matches_golden(schema: Path, golden: dict[str, np.ndarray]) -> None:
    model = S3FD()
    model.load_state_dict(standin_state_dict(schema), strict=True)
    detector = FaceDetector(model, device="cuda")
    images = list(golden["images_bgr"])
    expected = [tuple(row) for row in golden["api_boxes_x1y1x2y2"].tolist()]
    assert [tuple(box) for box in detector.detect(images)] == expected
    for image, dets in enumerate(detector.detect_all(images)):
        assert_same_rows(dets, golden[f"detections_img{image}"], BOX_ATOL, BOX_ATOL)
