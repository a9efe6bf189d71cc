"""The SadTalker backend in process with stand-in weights: face choice, odd images, bad input, seeds.

Full renders through the CLI (frames, fps, size, audio) are in tests/host/test_e2e_sadtalker.py; these
cover what the backend decides on its own, with one-frame clips to keep the CPU cost low.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.probe import ffmpeg_exe, probe
from lipsync_sadtalker.backend import SadTalkerBackend
from lipsync_sadtalker.crop import plan_crop
from lipsync_sadtalker.models import load_bundle
from lipsync_sadtalker.pipeline import check_face_size, driving_coefficients
from make_face_standins import write_checkpoints
from make_sadtalker_standins import write_bundle, write_enhancer, write_mapping

SPEECH_TONE = "sine=frequency=220:sample_rate=16000"


class _Events:
    """Collects what the backend reports (the worker loop would send these to the host)."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def progress(self, stage: str, done: int, total: int) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        self.logs.append(message)


def _tone(path: Path, seconds: float) -> Path:
    """A voiced tone of ``seconds`` (SadTalker needs sound, not speech, to run)."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", SPEECH_TONE, "-t", f"{seconds}", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, sadtalker_data: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sadtalker-standin")
    faces = write_checkpoints(folder)
    gfpgan, parsenet = write_enhancer(folder, sadtalker_data)
    return {
        "enhancer": gfpgan,
        "parser": parsenet,
        "bundle": write_bundle(folder / "bundle.safetensors", sadtalker_data),
        "mapping": write_mapping(folder / "mapping.pth.tar", sadtalker_data / "schema_mapping_crop.json"),
        "detector": faces["detection_Resnet50_astronaut.pth"],
        "blind": faces["detection_Resnet50_blind.pth"],
        "landmarks": faces["alignment_WFLW_4HG_mean_shape.pth"],
    }


@pytest.fixture(scope="module")
def backend() -> SadTalkerBackend:
    return SadTalkerBackend("cpu")


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tone(tmp_path_factory.mktemp("audio") / "one_frame.wav", 0.04)


def _params(
    weights: dict[str, Path], face: Path, audio: Path, output: Path, **options: Any
) -> dict[str, Any]:
    roles = {role: str(weights[role]) for role in ("bundle", "mapping", "detector", "landmarks")}
    return {
        "face": str(face),
        "audio": str(audio),
        "output": str(output),
        "format": "mp4",
        "seed": 3,
        "weights": roles,
        **options,
    }


def test_several_faces_take_the_largest_or_the_one_asked_for(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    image = cv2.imread(str(data_dir / "astronaut_512.jpg"))
    pair = tmp_path / "pair.png"
    cv2.imwrite(str(pair), np.concatenate([image, image], axis=1))
    _, right = backend.render(
        _params(weights, pair, one_frame, tmp_path / "right.mp4", face_index=1), _Events()
    )
    assert right["face_box"][0] == pytest.approx(512 + 181, abs=1)
    with pytest.raises(BackendError) as info:
        backend.render(_params(weights, pair, one_frame, tmp_path / "third.mp4", face_index=2), _Events())
    assert info.value.code == ErrorCode.BAD_OPTION
    assert not (tmp_path / "third.mp4").exists()


def test_rgba_portrait_renders_like_rgb(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    image = cv2.imread(str(data_dir / "astronaut_512.jpg"))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([image, np.full(image.shape[:2], 90, np.uint8)]))
    _, stats = backend.render(_params(weights, rgba, one_frame, tmp_path / "out.mp4"), _Events())
    assert stats["face_box"] == [181.0, 70.0, 268.0, 184.0]
    assert (stats["frames"], stats["width"], stats["height"]) == (1, 256, 256)
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.audio_codec) == (256, 256, "aac")


def test_grayscale_portrait_in_resize_mode(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    gray = tmp_path / "gray.jpg"
    cv2.imwrite(str(gray), cv2.imread(str(data_dir / "astronaut_256.jpg"), cv2.IMREAD_GRAYSCALE))
    _, stats = backend.render(
        _params(weights, gray, one_frame, tmp_path / "g.mp4", preprocess="resize"), _Events()
    )
    assert stats["face_box"] is None  # resize mode needs no detection
    assert (stats["width"], stats["height"]) == (256, 256)
    assert (tmp_path / "g.mp4").stat().st_size > 0


def test_no_face_is_no_face_and_leaves_no_file(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    params = _params(weights, data_dir / "astronaut_512.jpg", one_frame, tmp_path / "out.mp4")
    params["weights"]["detector"] = str(weights["blind"])
    with pytest.raises(BackendError) as info:
        backend.render(params, _Events())
    assert info.value.code == ErrorCode.NO_FACE
    assert list(tmp_path.iterdir()) == []


def test_audio_shorter_than_one_frame(
    backend: SadTalkerBackend, weights: dict[str, Path], data_dir: Path, tmp_path: Path
) -> None:
    short = _tone(tmp_path / "short.wav", 0.02)
    with pytest.raises(BackendError) as info:
        backend.render(_params(weights, data_dir / "astronaut_512.jpg", short, tmp_path / "o.mp4"), _Events())
    assert info.value.code == ErrorCode.AUDIO_TOO_SHORT
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("option", "value"), [("pose_style", 46), ("preprocess", "square"), ("size", 384), ("paste", "hard")]
)
def test_bad_options(
    backend: SadTalkerBackend,
    weights: dict[str, Path],
    one_frame: Path,
    data_dir: Path,
    tmp_path: Path,
    option: str,
    value: object,
) -> None:
    params = _params(
        weights, data_dir / "astronaut_512.jpg", one_frame, tmp_path / "o.mp4", **{option: value}
    )
    with pytest.raises(BackendError) as info:
        backend.render(params, _Events())
    assert info.value.code == ErrorCode.BAD_OPTION
    assert option.replace("_", "-") in info.value.message


@pytest.mark.parametrize("role", ["bundle", "mapping", "detector", "landmarks"])
def test_a_required_role_the_host_did_not_send_is_internal(
    backend: SadTalkerBackend,
    weights: dict[str, Path],
    one_frame: Path,
    data_dir: Path,
    tmp_path: Path,
    role: str,
) -> None:
    """Every preprocess mode detects and finds landmarks: a request without those files is a host bug."""
    params = _params(
        weights, data_dir / "astronaut_512.jpg", one_frame, tmp_path / "o.mp4", preprocess="resize"
    )
    del params["weights"][role]
    with pytest.raises(BackendError) as info:
        backend.render(params, _Events())
    assert info.value.code == ErrorCode.INTERNAL and repr(role) in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_tiny_face_is_refused() -> None:
    standard = np.array([[x, y] for x in range(0, 40, 5) for y in range(0, 45, 5)][:68], np.float32)
    info = plan_crop(standard * 0.5 + 100, (640, 480), "crop")
    with pytest.raises(BackendError) as err:
        check_face_size(info, "tiny.jpg")
    assert err.value.code == ErrorCode.NO_FACE
    assert "tiny.jpg" in err.value.message


def test_the_seed_fixes_blinks_and_head_motion(weights: dict[str, Path]) -> None:
    nets = load_bundle(weights["bundle"], "cpu")  # type: ignore[arg-type]
    windows = np.random.default_rng(0).uniform(-4, 2, (40, 80, 16)).astype(np.float32)
    source = np.zeros(73, np.float32)
    blink = np.zeros(40, np.float32)

    def coeffs(seed: int) -> np.ndarray:
        return driving_coefficients(nets, windows, source, blink=blink, pose_style=0, seed=seed)

    np.testing.assert_array_equal(coeffs(5), coeffs(5))
    assert np.abs(coeffs(5)[:, 64:] - coeffs(6)[:, 64:]).max() > 1e-4


def test_reference_videos_drive_blinks_and_add_head_motion(weights: dict[str, Path]) -> None:
    nets = load_bundle(weights["bundle"], "cpu")  # type: ignore[arg-type]
    frames = 7
    windows = np.random.default_rng(1).uniform(-4, 2, (frames, 80, 16)).astype(np.float32)
    source = np.random.default_rng(2).normal(0, 0.3, 73).astype(np.float32)
    blink = np.zeros(frames, np.float32)
    base = driving_coefficients(nets, windows, source, blink=blink, pose_style=0, seed=4)

    reference = np.tile(source, (3, 1))  # a 3-frame reference video, looped over the 7 frames
    reference[:, 64:70] += np.array([[0.0] * 6, [0.1] * 6, [-0.2] * 6], np.float32)
    posed = driving_coefficients(nets, windows, source, blink=blink, pose_style=0, seed=4, ref_pose=reference)
    motion = np.array([0.0, 0.1, -0.2, 0.0, 0.1, -0.2, 0.0], np.float32)[:, None]
    np.testing.assert_allclose(posed[:, 64:], base[:, 64:] + motion, atol=1e-6)
    np.testing.assert_array_equal(posed[:, :64], base[:, :64])  # expressions untouched

    reference[:, :64] = np.random.default_rng(3).normal(0, 0.5, (3, 64))
    blinked = driving_coefficients(
        nets, windows, source, blink=np.ones(frames, np.float32), pose_style=0, seed=4, ref_eyeblink=reference
    )
    assert np.abs(blinked[:, :64] - base[:, :64]).max() > 1e-3  # the reference expressions drive Audio2Exp
    np.testing.assert_array_equal(blinked[:, 64:], base[:, 64:])  # the pose comes from the source as before


def test_gfpgan_enhancer_doubles_the_frames(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    params = _params(weights, data_dir / "astronaut_512.jpg", one_frame, tmp_path / "hd.mp4")
    params["weights"] |= {"enhancer": str(weights["enhancer"]), "parser": str(weights["parser"])}
    _, stats = backend.render(params, _Events())
    assert (stats["enhancer"], stats["width"], stats["height"]) == ("gfpgan", 512, 512)
    assert "enhance" in stats["seconds"]
    info = probe(tmp_path / "hd.mp4")
    assert (info.width, info.height) == (512, 512)


def test_video_portrait_uses_its_first_frame(
    backend: SadTalkerBackend, weights: dict[str, Path], one_frame: Path, data_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "portrait.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-loop", "1", "-i", str(data_dir / "astronaut_512.jpg"), "-t", "0.2",
         "-r", "25", "-c:v", "libx264", "-crf", "1", "-pix_fmt", "yuv444p", str(video)],
        check=True,
    )  # fmt: skip
    events = _Events()
    _, stats = backend.render(_params(weights, video, one_frame, tmp_path / "out.mp4"), events)
    assert stats["face_box"] == [181.0, 70.0, 268.0, 184.0]
    assert any("first frame" in line for line in events.logs)
