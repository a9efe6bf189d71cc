"""SadTalker's face front end: RetinaFace and AWing against facexlib goldens, decoding, NMS, face choice.

Goldens: tests/data/sadtalker/make_face_goldens.py (facexlib 0.3.0, stand-in weights). Tolerances are a few
times the float32 noise measured there (float32 vs float64 forward, stored in each npz's ``notes``); on the
machine that made the goldens our networks reproduce facexlib bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import make_face_standins as standins
import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_sadtalker import face_analysis, landmarks, retinaface
from lipsync_sadtalker.face_analysis import DetectedFace, FaceAnalyzer, crop_box, is_missing, select_face
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity, float32_steps
from torch import Tensor

# float32 vs float64 forward (make_face_goldens notes): loc 2.2e-5, conf 5.7e-6, landms 2.5e-5 (values O(1)).
LOC_ATOL = 1e-4
CONF_ATOL = 2e-5
# Decoded boxes scale offsets by up to 0.1 * 512 px (and exp of 0.2 * offset): 1e-4 of offset -> ~5e-3 px.
BOX_ATOL = 1e-2
# AWing last stack: float32 vs float64 differ by up to 4.1e-3 on heatmaps with std 821; the smallest gap
# between a heatmap's maximum and its runner-up is 0.099, so arg-maxes (and the decoded points) are exact.
HEATMAP_ATOL = 5e-2


@pytest.fixture(scope="module")
def retina_schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_retinaface.json"


@pytest.fixture(scope="module")
def awing_schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_awing.json"


@pytest.fixture(scope="module")
def retina_golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_retinaface.npz")


@pytest.fixture(scope="module")
def awing_golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_awing.npz")


@pytest.fixture(scope="module")
def retina_state(retina_schema: Path) -> dict[str, Tensor]:
    return standin_state_dict(retina_schema)


@pytest.fixture(scope="module")
def awing_state(awing_schema: Path) -> dict[str, Tensor]:
    return standin_state_dict(awing_schema)


@pytest.fixture(scope="module")
def retina_net(retina_state: dict[str, Tensor]) -> retinaface.RetinaFace:
    net = retinaface.RetinaFace()
    load_into(net, retina_state, source="stand-in")  # strict, with a clear error naming keys
    return net.eval()


@pytest.fixture(scope="module")
def awing_net(awing_state: dict[str, Tensor]) -> landmarks.FAN:
    net = landmarks.FAN()
    load_into(net, awing_state, source="stand-in")
    return net.eval()


@pytest.fixture(scope="module")
def astronaut_rgb(data_dir: Path) -> np.ndarray:
    """astronaut_512.jpg as the goldens saw it: its decoded pixels, stored as a lossless PNG.

    (JPEG decoders of other OpenCV builds may differ by a level; a PNG decodes to the same pixels everywhere.)
    """
    bgr = cv2.imread(str(data_dir / "astronaut_512_pixels.png"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def as_rows(found: retinaface.Detections) -> np.ndarray:
    """facexlib's row layout: x1, y1, x2, y2, score, then the five points' x, y."""
    return np.concatenate([found.boxes, found.scores[:, None], found.landmarks.reshape(-1, 10)], axis=1)


# ------------------------------------------------------------------------------------ state dicts


@pytest.mark.parametrize(
    ("schema_name", "model_cls"), [("retina", retinaface.RetinaFace), ("awing", landmarks.FAN)]
)
def test_state_dict_matches_facexlib_schema(
    schema_name: str, model_cls: type[torch.nn.Module], retina_schema: Path, awing_schema: Path
) -> None:
    schema = load_schema(retina_schema if schema_name == "retina" else awing_schema)
    state = model_cls().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(schema.items())  # same order, too
    assert len(state) == {"retina": 456, "awing": 1137}[schema_name]


# ------------------------------------------------------------------------------------- RetinaFace


def test_preprocess_is_bgr_minus_mean_channels_last() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = retinaface.preprocess(rgb)
    expected = (rgb[..., ::-1] - np.array(retinaface.MEAN_BGR)).transpose(2, 0, 1)[None].astype(np.float32)
    np.testing.assert_array_equal(x.numpy(), expected)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_priors_match_facexlib(retina_golden: dict[str, np.ndarray]) -> None:
    height, width = retina_golden["raw_input_u8_bgr"].shape[:2]
    np.testing.assert_array_equal(retinaface.priors(height, width).numpy(), retina_golden["raw_priors"])


def test_raw_outputs_match_golden(
    retina_net: retinaface.RetinaFace, retina_golden: dict[str, np.ndarray]
) -> None:
    with torch.inference_mode():
        loc, conf, landms = retina_net(retinaface.preprocess(retina_golden["raw_input_u8_bgr"][..., ::-1]))
    assert_parity(loc[0].numpy(), retina_golden["raw_out_loc"], LOC_ATOL, "loc")
    assert_parity(conf[0].numpy(), retina_golden["raw_out_conf"], CONF_ATOL, "conf")
    assert_parity(landms[0].numpy(), retina_golden["raw_out_landms"], LOC_ATOL, "landms")


def test_postprocess_of_golden_outputs_matches_facexlib(retina_golden: dict[str, np.ndarray]) -> None:
    """Decoding, threshold and NMS alone, on facexlib's own network outputs: same rows in the same order."""
    outputs = [torch.from_numpy(retina_golden[f"raw_out_{name}"]) for name in ("loc", "conf", "landms")]
    image_hw = retina_golden["raw_input_u8_bgr"].shape[:2]
    rows = as_rows(retinaface.postprocess(*outputs, image_hw, float(retina_golden["raw_threshold"])))
    assert len(rows) == 105
    # exp, products and the image scale in float32 on the same inputs: a few steps of the largest coordinate.
    expected = retina_golden["raw_dets"]
    assert_parity(rows, expected, float32_steps(expected, 16), "raw_dets")


def test_detect_matches_facexlib_on_a_photo(
    retina_net: retinaface.RetinaFace, retina_golden: dict[str, np.ndarray], astronaut_rgb: np.ndarray
) -> None:
    """Full detect at SadTalker's threshold on a 512 px photo (contrast lowered: see make_face_goldens).

    About 1900 priors pass 0.97 with scores ~1.5e-5 apart, so float noise of another machine can swap
    neighbours in NMS order and change a few kept boxes (seen: 483 of 486 rows on a second machine). Hence:
    every prior's score within tolerance, and nearly every detection found again.
    """
    bgr = np.ascontiguousarray(astronaut_rgb[..., ::-1])
    assert hashlib.sha256(bgr.tobytes()).hexdigest() == str(retina_golden["astro_bgr_sha256"])
    low = np.round(128 + 0.1 * (astronaut_rgb.astype(np.float64) - 128)).astype(np.uint8)
    with torch.inference_mode():
        loc, conf, landms = retina_net(retinaface.preprocess(low))
    scores = retina_golden["astro_low_contrast_out_face_scores"]
    assert_parity(conf[0, :, 1].numpy(), scores, CONF_ATOL, "face scores")
    rows = as_rows(retinaface.postprocess(loc[0], conf[0], landms[0], low.shape[:2]))
    expected = retina_golden["astro_low_contrast_dets_sadtalker"]
    assert np.all(np.diff(rows[:, 4]) <= 0), "not sorted by decreasing score"
    close = np.abs(rows[:, None, :] - expected[None, :, :]) <= np.array(
        [BOX_ATOL] * 4 + [CONF_ATOL] + [BOX_ATOL] * 10
    )
    found_again = close.all(axis=2).any(axis=0)
    assert found_again.mean() >= 0.98 and abs(len(rows) - len(expected)) <= 0.02 * len(expected)


def test_decode_boxes_and_points() -> None:
    prior = torch.tensor([[0.5, 0.25, 0.2, 0.4]])
    loc = torch.tensor([[1.0, -2.0, 0.0, 5.0 * np.log(2.0)]])
    box = retinaface.decode_boxes(loc, prior)[0]  # centre (0.52, 0.17), size (0.2, 0.8)
    np.testing.assert_allclose(box.numpy(), [0.42, -0.23, 0.62, 0.57], atol=1e-6)
    points = retinaface.decode_landmarks(torch.arange(10.0)[None], prior)[0]
    np.testing.assert_allclose(points[1].numpy(), [0.5 + 0.02 * 2, 0.25 + 0.04 * 3], atol=1e-6)


def test_nms_keeps_iou_at_threshold_and_breaks_ties_by_index() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [0, 6, 10, 16], [50, 50, 60, 60]], np.float32
    )
    # box 2 vs 0: IoU 50 / 150 = 1/3; box 3 vs 0: 40 / 160 = 1/4 (kept at 0.25, dropped above it)
    scores = np.array([0.9, 0.9, 0.8, 0.7, 0.1], np.float32)
    assert retinaface.nms(boxes, scores, 0.4).tolist() == [0, 2, 3, 4]
    assert retinaface.nms(boxes, scores, 0.25).tolist() == [0, 3, 4]
    assert retinaface.nms(boxes[:0], scores[:0]).tolist() == []


# ------------------------------------------------------------------------------------------ AWing


def golden_crop_in_image(awing_golden: dict[str, np.ndarray]) -> tuple[np.ndarray, face_analysis.Box]:
    """An image holding the golden AWing crop where upstream cut it out of the photo, and the golden box."""
    box = tuple(awing_golden["input_box_xyxy"].tolist())
    crop = awing_golden["input_crop_u8_rgb"]
    image = np.zeros((300, 320, 3), np.uint8)
    image[int(box[1]) : int(box[1]) + crop.shape[0], int(box[0]) : int(box[0]) + crop.shape[1]] = crop
    return image, box  # type: ignore[return-value]


@pytest.fixture(scope="module")
def awing_run(
    retina_net: retinaface.RetinaFace, awing_net: landmarks.FAN, awing_golden: dict[str, np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """`FaceAnalyzer.landmarks68` on an image holding the golden crop at the golden box; returns the
    landmarks and the heatmaps of every stack (one AWing forward for all AWing tests)."""
    image, box = golden_crop_in_image(awing_golden)
    stacks: list[np.ndarray] = []
    handle = awing_net.register_forward_hook(lambda _m, _i, out: stacks.extend(o[0].numpy() for o in out))
    try:
        lm68 = FaceAnalyzer(retina_net, awing_net).landmarks68(image, box)
    finally:
        handle.remove()
    return lm68, stacks


def test_awing_preprocess_resizes_flips_and_scales() -> None:
    crop = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    x = landmarks.preprocess([crop])
    expected = (
        cv2.resize(crop, (256, 256), interpolation=cv2.INTER_LINEAR)[..., ::-1].transpose(2, 0, 1) / 255
    )
    assert x.shape == (1, 3, 256, 256)
    np.testing.assert_allclose(x[0].numpy(), expected, rtol=0, atol=1e-7)


def test_awing_heatmaps_match_golden(
    awing_run: tuple[np.ndarray, list[np.ndarray]], awing_golden: dict[str, np.ndarray]
) -> None:
    _, stacks = awing_run
    assert len(stacks) == landmarks.NUM_STACKS
    last = stacks[-1]
    assert_parity(last[:, ::4, ::4], awing_golden["out_heatmaps_last_sub"], HEATMAP_ATOL, "heatmaps")
    channels = awing_golden["out_heatmaps_last_channels_0_50_97_98"]
    assert_parity(last[[0, 50, 97, 98]], channels, HEATMAP_ATOL, "heatmap channels 0, 50, 97, 98")
    abs_mean = np.stack([np.abs(s).mean(axis=(1, 2)) for s in stacks])
    np.testing.assert_allclose(abs_mean, awing_golden["out_heatmaps_abs_mean"], rtol=1e-4)
    np.testing.assert_array_equal(last[:-1].reshape(98, -1).argmax(axis=1), awing_golden["out_argmax_last"])


def test_awing_landmarks_match_golden(
    awing_run: tuple[np.ndarray, list[np.ndarray]], awing_golden: dict[str, np.ndarray]
) -> None:
    lm68, stacks = awing_run
    points = landmarks.decode_heatmaps(stacks[-1][:-1])
    np.testing.assert_array_equal(points, awing_golden["out_points98_heatmap"])
    height, width = awing_golden["input_crop_u8_rgb"].shape[:2]
    np.testing.assert_array_equal(points * (width / 64, height / 64), awing_golden["out_points98_crop"])
    assert lm68.dtype == np.float32
    np.testing.assert_array_equal(lm68, awing_golden["out_lm68"])


@pytest.mark.parametrize("case", ["interior", "edges"])
def test_decode_heatmaps_matches_upstream_quirks(case: str, awing_golden: dict[str, np.ndarray]) -> None:
    """The draws of make_face_goldens.decode_case_heatmaps, rebuilt here and checked by their checksum."""
    rng = np.random.Generator(np.random.PCG64(1235))
    peaks = {
        "interior": [(20 + 5 * k) * 64 + 10 + 7 * k for k in range(6)],
        "edges": [0, 63, 64, 130, 4032, 4094],
    }
    for name in ("interior", "edges"):
        maps = rng.standard_normal((6, 64 * 64)).astype(np.float32)
        maps[np.arange(6), peaks[name]] = 10.0
        if name == case:
            break
    assert maps.astype(np.float64).sum() == awing_golden[f"decode_{case}_checksum"]
    points = landmarks.decode_heatmaps(maps.reshape(6, 64, 64))
    np.testing.assert_array_equal(points, awing_golden[f"decode_{case}_points"])


def test_decode_heatmaps_peak_in_last_cell_does_not_raise() -> None:
    maps = np.zeros((2, 64, 64), np.float32)
    maps[0, 63, 63] = 1.0
    maps[1, 10, 20], maps[1, 10, 21], maps[1, 9, 20], maps[1, 11, 20] = 1.0, 0.5, 0.3, 0.8
    points = landmarks.decode_heatmaps(maps)
    np.testing.assert_array_equal(points[0], [63.75, 63.75])  # right neighbour: itself (upstream: IndexError)
    # Upstream's global fallback: as map 0 sits in the last row, every map takes the last cell as "below".
    np.testing.assert_array_equal(points[1], [20.75, 10.25])


def test_98_to_68_matches_facexlib(awing_golden: dict[str, np.ndarray], sadtalker_data: Path) -> None:
    out = landmarks.landmarks_98_to_68(awing_golden["map_in_points98"])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, awing_golden["map_out_points68"])
    facts = json.loads((sadtalker_data / "facts_sadtalker.json").read_text())["landmark_98_to_68"]
    assert [list(p) for p in landmarks.LANDMARKS_98_TO_68] == facts[
        "rule_each_68_index_is_mean_of_these_98_indices"
    ]


# ---------------------------------------------------------------------------------- face choice


def face(x1: float, y1: float, x2: float, y2: float, score: float = 0.99) -> DetectedFace:
    return DetectedFace((x1, y1, x2, y2), score, ((0.0, 0.0),) * 5)


def test_select_face_largest_or_by_index_from_the_left() -> None:
    faces = [face(100, 0, 150, 50), face(0, 0, 80, 80, 0.98), face(200, 0, 280, 80, 0.97)]
    assert select_face(faces) is faces[1]  # largest; equal areas go to the first (best-scoring)
    assert [select_face(faces, i) for i in (0, 1, 2, -1)] == [faces[1], faces[0], faces[2], faces[2]]


def test_select_face_errors() -> None:
    with pytest.raises(BackendError) as err:
        select_face([], what="portrait.png")
    assert err.value.code == ErrorCode.NO_FACE and "portrait.png" in err.value.message
    with pytest.raises(BackendError) as err:
        select_face([face(0, 0, 10, 10)], 1)
    assert err.value.code == ErrorCode.BAD_OPTION and err.value.hint is not None


def test_crop_box_truncates_and_clamps() -> None:
    assert crop_box((-3.7, 2.9, 50.99, 600.0), (480, 640)) == (0, 2, 50, 480)


def test_detect_faces_drops_boxes_outside_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    found = retinaface.Detections(
        np.array([[-50, -40, -1, -2], [10, 10, 40, 50]], np.float32),
        np.array([0.99, 0.98], np.float32),
        np.zeros((2, 5, 2), np.float32),
    )
    monkeypatch.setattr(face_analysis, "detect", lambda *args: found)
    analyzer = FaceAnalyzer.__new__(FaceAnalyzer)
    analyzer.detector, analyzer.score_threshold = None, 0.97  # type: ignore[assignment]
    faces = analyzer.detect_faces(np.zeros((100, 100, 3), np.uint8))
    assert [f.box for f in faces] == [(10.0, 10.0, 40.0, 50.0)]


def test_track_landmarks_reuses_previous_and_marks_leading_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames 0, 1 without a face -> -1; frame 2 found; frame 3 missing -> copy of 2; frame 4 found."""
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(5)]
    has_face = {2, 4}
    analyzer = FaceAnalyzer.__new__(FaceAnalyzer)
    monkeypatch.setattr(
        analyzer, "detect_faces", lambda f: [face(0, 0, 4, 4)] if f[0, 0, 0] in has_face else []
    )
    monkeypatch.setattr(
        analyzer,
        "_landmarks68",
        lambda images, boxes: [np.full((68, 2), im[0, 0, 0], np.float32) for im in images],
    )
    calls: list[tuple[int, int]] = []
    result = analyzer.track_landmarks(frames, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert result.shape == (5, 68, 2) and result.dtype == np.float32
    assert [is_missing(r) for r in result] == [True, True, False, False, False]
    assert [float(r[0, 0]) for r in result[2:]] == [2.0, 2.0, 4.0]
    assert calls == [(2, 5), (4, 5), (5, 5)]


# ------------------------------------------------------------------------ stand-in checkpoints


def test_standin_detector_finds_the_astronaut(
    retina_state: dict[str, Tensor], awing_state: dict[str, Tensor], astronaut_rgb: np.ndarray
) -> None:
    """What the end-to-end tests use (make_face_standins.py writes these weights in the official containers):
    exactly one plausible face on the astronaut, and a mean face shape in its box."""
    detector, aligner = retinaface.RetinaFace(), landmarks.FAN()
    load_into(detector, standins.finding_detector(retina_state, astronaut_rgb), source="finding")
    load_into(aligner, standins.mean_shape_aligner(awing_state), source="mean shape")
    analyzer = FaceAnalyzer(detector, aligner)
    faces = analyzer.detect_faces(astronaut_rgb)
    assert len(faces) == 1 and faces[0].score > 0.999
    np.testing.assert_allclose(faces[0].box, standins.ASTRONAUT_FACE_BOX, atol=1e-3)
    np.testing.assert_allclose(faces[0].points, standins.ASTRONAUT_FIVE_POINTS, atol=1e-3)
    lm68 = analyzer.landmarks68(astronaut_rgb, faces[0].box)
    x1, y1, x2, y2 = faces[0].box
    expected = landmarks.landmarks_98_to_68(standins.mean_face98()) * (x2 - x1, y2 - y1) + (int(x1), int(y1))
    np.testing.assert_allclose(lm68, expected, atol=1.0)  # heatmap cells are 1.4 x 1.8 px here


def test_blind_detector_raises_no_face(
    retina_state: dict[str, Tensor], awing_net: landmarks.FAN, data_dir: Path
) -> None:
    net = retinaface.RetinaFace()
    load_into(net, standins.blind_detector(retina_state), source="blind")
    image = cv2.cvtColor(cv2.imread(str(data_dir / "astronaut_256.jpg")), cv2.COLOR_BGR2RGB)
    with pytest.raises(BackendError) as err:
        FaceAnalyzer(net.eval(), awing_net).face_landmarks(image, what="astronaut_256.jpg")
    assert err.value.code == ErrorCode.NO_FACE


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("full_fp32")
def test_cuda_matches_golden(
    retina_state: dict[str, Tensor],
    awing_state: dict[str, Tensor],
    retina_golden: dict[str, np.ndarray],
    awing_golden: dict[str, np.ndarray],
) -> None:
    detector, aligner = retinaface.RetinaFace(), landmarks.FAN()
    load_into(detector, retina_state, source="stand-in")
    load_into(aligner, awing_state, source="stand-in")
    analyzer = FaceAnalyzer(detector, aligner, device="cuda")
    with torch.inference_mode():
        loc, conf, landms = analyzer.detector(
            retinaface.preprocess(retina_golden["raw_input_u8_bgr"][..., ::-1], "cuda")
        )
    assert_parity(loc[0].cpu().numpy(), retina_golden["raw_out_loc"], LOC_ATOL, "loc")
    assert_parity(conf[0].cpu().numpy(), retina_golden["raw_out_conf"], CONF_ATOL, "conf")
    assert_parity(landms[0].cpu().numpy(), retina_golden["raw_out_landms"], LOC_ATOL, "landms")
    image, box = golden_crop_in_image(awing_golden)
    np.testing.assert_array_equal(analyzer.landmarks68(image, box), awing_golden["out_lm68"])
