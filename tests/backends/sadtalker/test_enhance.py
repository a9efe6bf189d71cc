"""The GFPGAN face enhancer: alignment, paste and parsing mask against facexlib's golden; FaceEnhancer.

Golden: the ``paste_*`` and ``parse_*`` entries of tests/data/sadtalker/golden_gfpgan.npz
(make_gfpgan_goldens.py, facexlib 0.3.0 FaceRestoreHelper with the rectangle mask and with a stand-in
ParseNet). On the machine that made it the alignment matrices, crops, ParseNet labels and pasted frames are
reproduced exactly; the tests allow 1e-9 on the matrices, exact uint8 pixels for the rectangle paste, and
for the parsing path the float32 noise (labels may flip only where two logits are within that noise).
The behaviour tests use a fixed fake detector and cheap fake restorers; two tests run stand-in networks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_sadtalker import enhance
from lipsync_sadtalker.enhance import FaceEnhancer, gfpgan_restorer, paste_faces, upscale_background
from lipsync_sadtalker.face_analysis import DetectedFace
from lipsync_sadtalker.gfpgan import GFPGANv1Clean, ParseNet
from standin import load_golden, standin_state_dict
from standin_weights import make_state_dict
from tolerances import assert_parity
from torch import Tensor, nn

# ParseNet, float32 vs float64 (make_gfpgan_goldens notes): logits differ by up to 3.4e-4 (std 15.3).
LOGIT_ATOL = 2e-3
# Five points read off astronaut_512.jpg (see make_face_standins.ASTRONAUT_FIVE_POINTS).
ASTRONAUT_POINTS = ((201.7, 100.7), (246.7, 101.7), (225.0, 125.0), (205.0, 143.3), (245.0, 143.3))
ASTRONAUT_BOX = (181.0, 70.0, 268.0, 184.0)


class FixedDetector:
    """Returns the same faces for every image and counts its calls."""

    def __init__(self, *faces: DetectedFace) -> None:
        self.faces = list(faces)
        self.calls = 0

    def detect_faces(self, image_rgb: np.ndarray) -> list[DetectedFace]:
        self.calls += 1
        return list(self.faces)


def face(
    points: tuple[tuple[float, float], ...] = ASTRONAUT_POINTS,
    box: tuple[float, float, float, float] = ASTRONAUT_BOX,
) -> DetectedFace:
    return DetectedFace(box, 0.999, points)


class Recorder:
    """A restorer that applies ``fn`` and records the batch sizes it was given."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn
        self.batches: list[int] = []

    def __call__(self, faces: Tensor) -> Tensor:
        self.batches.append(faces.shape[0])
        return self.fn(faces)


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_gfpgan.npz")


@pytest.fixture(scope="module")
def astronaut_rgb(data_dir: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(data_dir / "astronaut_512.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def golden_restored_faces() -> np.ndarray:
    """The two "restored" faces of the paste golden (its notes: the draw after the image from PCG64(4322))."""
    rng = np.random.Generator(np.random.PCG64(4322))
    rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    return rng.integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ facexlib parity


def test_alignment_matches_facexlib(golden: dict[str, np.ndarray]) -> None:
    image = golden["paste_image_u8_rgb"]
    for points, affine, crop_sub, digest in zip(
        golden["paste_points"],
        golden["paste_affine"],
        golden["paste_crops_sub"],
        golden["paste_crops_sha256"],
        strict=True,
    ):
        ours = enhance.face_affine(points)
        np.testing.assert_allclose(ours, affine, rtol=0, atol=1e-9)
        crop = enhance.align_face(image, ours)
        assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
        np.testing.assert_array_equal(crop[::4, ::4], crop_sub)
        assert hashlib.sha256(crop.tobytes()).hexdigest() == str(digest)


def test_paste_matches_facexlib(golden: dict[str, np.ndarray]) -> None:
    affines = [enhance.face_affine(points) for points in golden["paste_points"]]
    inverse = np.stack([enhance.paste_transform(affine) for affine in affines])
    np.testing.assert_allclose(inverse, golden["paste_inverse_affine"], rtol=0, atol=1e-9)
    out = paste_faces(golden["paste_image_u8_rgb"], list(zip(golden_restored_faces(), affines, strict=True)))
    np.testing.assert_array_equal(out, golden["paste_out_u8_rgb"])


def test_model_range_conversions() -> None:
    """GFPGANer: (x / 255 - 0.5) / 0.5 in; out clamped to [-1, 1], (y + 1) / 2 x 255, rounded."""
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    x = enhance.to_model_range(list(pixels), torch.device("cpu"))
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    np.testing.assert_array_equal(
        x[0, 0].numpy().ravel(), ((np.arange(256) / 255.0).astype(np.float32) - 0.5) / 0.5
    )
    np.testing.assert_array_equal(enhance.from_model_range(x), pixels)  # exact round trip
    extremes = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    np.testing.assert_array_equal(enhance.from_model_range(extremes)[0, 0, :, 0], [0, 0, 128, 255, 255])


# ------------------------------------------------------------------------------------ behaviour


def test_no_face_is_a_plain_lanczos_upscale(astronaut_rgb: np.ndarray) -> None:
    restore = Recorder(lambda x: x)
    out = FaceEnhancer(restore, FixedDetector()).enhance(astronaut_rgb)
    assert out.shape == (1024, 1024, 3) and out.dtype == np.uint8
    expected = cv2.resize(astronaut_rgb, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_array_equal(out, expected)
    assert restore.batches == []


def test_faces_with_close_eyes_are_skipped(astronaut_rgb: np.ndarray) -> None:
    tiny = ((100.0, 100.0), (104.0, 100.0), (102.0, 102.0), (100.5, 104.0), (103.5, 104.0))  # eyes 4 px apart
    restore = Recorder(lambda x: x)
    enhancer = FaceEnhancer(restore, FixedDetector(face(tiny, (98.0, 97.0, 106.0, 106.0))))
    np.testing.assert_array_equal(enhancer.enhance(astronaut_rgb), upscale_background(astronaut_rgb))
    assert restore.batches == []


def test_face_is_pasted_only_inside_its_mask(astronaut_rgb: np.ndarray) -> None:
    """A white "restored" face: the mask core turns white, everything outside the soft mask is untouched."""
    restore = Recorder(torch.ones_like)
    out = FaceEnhancer(restore, FixedDetector(face())).enhance(astronaut_rgb)
    background = upscale_background(astronaut_rgb)
    affine = enhance.face_affine(np.array(ASTRONAUT_POINTS))
    inverse = enhance.paste_transform(affine)
    hard, soft = enhance.rectangle_mask(inverse, (1024, 1024), enhance.UPSCALE)
    outside = soft == 0
    assert 0.05 < 1 - outside.mean() < 0.5  # the face square covers a good part of the frame, not all
    assert (hard[soft > 0.01] > 0).all()  # the soft mask lies inside the warped face square
    np.testing.assert_array_equal(out[outside], background[outside])
    assert (out[soft >= 1.0] == 255).all()
    assert restore.batches == [1]
    # the face square's centre maps back near the middle of the astronaut's face (x2 for the upscale)
    centre = inverse @ np.array([256.0, 256.0, 1.0])
    assert abs(centre[0] / 2 - 225) < 10 and abs(centre[1] / 2 - 125) < 25


def test_frames_share_batches_and_match_one_by_one(astronaut_rgb: np.ndarray) -> None:
    frames = [astronaut_rgb[:256, :256], astronaut_rgb[:256, 128:384], astronaut_rgb[100:356, 100:356]]
    second = ((30.0, 40.0), (60.0, 41.0), (45.0, 55.0), (33.0, 70.0), (57.0, 70.0))
    detector = FixedDetector(face(), face(second, (20.0, 20.0, 70.0, 80.0)))

    def darken(x: Tensor) -> Tensor:
        return x * 0.5 - 0.25

    batched = Recorder(darken)
    together = FaceEnhancer(batched, detector, batch_size=4).enhance_frames(frames)
    assert batched.batches == [4, 2]  # six faces from three frames
    single = Recorder(darken)
    alone = [FaceEnhancer(single, detector, batch_size=4).enhance(frame) for frame in frames]
    assert single.batches == [2, 2, 2]
    for a, b, frame in zip(together, alone, frames, strict=True):
        assert a.shape == (2 * frame.shape[0], 2 * frame.shape[1], 3)
        np.testing.assert_array_equal(a, b)


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err:
        FaceEnhancer.from_files(tmp_path / "GFPGANv1.4.pth", "cpu", FixedDetector())
    assert err.value.code == ErrorCode.WEIGHTS_MISSING


def test_standin_gfpgan_end_to_end(sadtalker_data: Path, astronaut_rgb: np.ndarray) -> None:
    """One stand-in GFPGAN forward: the enhanced frame is the restored crop pasted with the seeded noise."""
    model = GFPGANv1Clean()
    load_into(model, standin_state_dict(sadtalker_data / "schema_gfpgan.json"), source="stand-in")
    restore = Recorder(gfpgan_restorer(model.eval(), torch.Generator().manual_seed(0)))
    outputs: list[Tensor] = []
    inner = restore.fn
    restore.fn = lambda x: outputs.append(inner(x)) or outputs[-1]
    frame = astronaut_rgb[40:296, 100:356]  # 256 x 256 around the face
    points = tuple((x - 100.0, y - 40.0) for x, y in ASTRONAUT_POINTS)
    out = FaceEnhancer(restore, FixedDetector(face(points))).enhance(frame)
    assert out.shape == (512, 512, 3) and restore.batches == [1]
    affine = enhance.face_affine(np.array(points))
    restored = enhance.from_model_range(outputs[0])[0]
    np.testing.assert_array_equal(out, paste_faces(frame, [(restored, affine)]))
    assert not np.array_equal(out, upscale_background(frame))


# ------------------------------------------------------------------------------------- ParseNet


class OneClass(nn.Module):
    """A fake parser: every pixel is class ``label``."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
        logits[:, self.label] = 1.0
        return logits


def test_parse_mask_and_paste_match_facexlib(sadtalker_data: Path, golden: dict[str, np.ndarray]) -> None:
    entries = json.loads((sadtalker_data / "schema_gfpgan.json").read_text())["parsenet_state_dict"]
    parser = ParseNet()
    state = make_state_dict({key: tuple(shape) for key, shape, _ in entries})
    load_into(parser, {k: torch.from_numpy(v) for k, v in state.items()}, source="stand-in")
    face = golden_restored_faces()[0]
    captured: list[Tensor] = []
    parser.register_forward_hook(lambda _m, _i, out: captured.append(out))
    masks = enhance.parse_masks(parser.eval(), [face], torch.device("cpu"))
    logits = captured[0][0].numpy()
    assert_parity(logits[:, ::16, ::16], golden["parse_logits_sub"], LOGIT_ATOL, "parse_logits_sub")
    ordered = np.sort(logits, axis=0)
    clear = ordered[-1] - ordered[-2] > 2 * LOGIT_ATOL
    np.testing.assert_array_equal(logits.argmax(axis=0)[clear], golden["parse_labels"][clear])
    assert masks[0].shape == (512, 512) and masks[0].dtype == np.float64
    affine = enhance.face_affine(golden["paste_points"][0])
    out = paste_faces(golden["paste_image_u8_rgb"], [(face, affine)], masks=masks)
    diff = np.abs(out.astype(int) - golden["parse_out_u8_rgb"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # exact where no label sits on a float32 tie


@pytest.mark.parametrize(("label", "kept"), [(1, True), (17, False)])  # skin is kept, hair is not
def test_enhancer_pastes_with_the_parsing_mask(astronaut_rgb: np.ndarray, label: int, kept: bool) -> None:
    enhancer = FaceEnhancer(Recorder(torch.ones_like), FixedDetector(face()), parser=OneClass(label))
    out = enhancer.enhance(astronaut_rgb)
    mask = enhance.parse_masks(OneClass(label), [np.zeros((512, 512, 3), np.uint8)], torch.device("cpu"))[0]
    assert (mask.max() == 1.0) == kept and (mask.max() == 0.0) != kept
    assert (mask[:10] == 0).all() and (mask[:, -10:] == 0).all()  # the zeroed border
    affine = enhance.face_affine(np.array(ASTRONAUT_POINTS))
    white = np.full((512, 512, 3), 255, np.uint8)
    np.testing.assert_array_equal(out, paste_faces(astronaut_rgb, [(white, affine)], masks=[mask]))
    assert np.array_equal(out, upscale_background(astronaut_rgb)) != kept


def test_missing_parsenet_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err:
        FaceEnhancer.from_files(
            tmp_path / "GFPGANv1.4.pth",
            "cpu",
            FixedDetector(),
            parsenet_path=tmp_path / "parsing_parsenet.pth",
        )
    assert err.value.code == ErrorCode.WEIGHTS_MISSING and "parsing_parsenet.pth" in err.value.message
