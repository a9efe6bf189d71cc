"""End-to-end parity with the official ``inference.main()`` (golden_pipeline.npz).

The official output stops at its last, tail-clamped mel chunk; ours covers the whole audio, so the
comparison covers every frame the official code produces except that last one.
"""

from __future__ import annotations

import wave
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.worker import Reporter
from lipsync_wav2lip.backend import Wav2LipBackend
from lipsync_wav2lip.features import SAMPLE_RATE, frame_windows, melspectrogram, num_frames_for
from lipsync_wav2lip.layers import fold_batchnorm
from lipsync_wav2lip.pipeline import FaceTrack, crop_faces, face_input, generate, paste, prepare_video_frames
from lipsync_wav2lip.wav2lip import Wav2Lip
from standin import load_golden, standin_state_dict
from tolerances import assert_parity

ATOL = 1e-5  # reference/wav2lip/README.md: pipeline model inputs and A_model_output


@pytest.fixture(scope="module")
def golden(wav2lip_data: Path) -> dict[str, np.ndarray]:
    return load_golden(wav2lip_data / "golden_pipeline.npz")


@pytest.fixture(scope="module", params=["plain", "bn_folded"])
def generator(request, wav2lip_data: Path) -> Wav2Lip:
    model = Wav2Lip()
    load_into(model, standin_state_dict(wav2lip_data / "schema_wav2lip.json"), source="stand-in")
    model.eval()
    return fold_batchnorm(model) if request.param == "bn_folded" else model


def _windows(golden, fps: float) -> np.ndarray:
    samples = golden["pcm16"].astype(np.float32) / 32768
    mel = melspectrogram(samples)
    return frame_windows(mel, fps, num_frames_for(len(samples) / SAMPLE_RATE, fps))


def _render(model, frames, track, windows, batch_size) -> np.ndarray:
    faces = face_input(crop_faces(frames, track))
    out = []
    with torch.inference_mode():
        for mouths in generate(model, faces, windows, batch_size=batch_size, device=torch.device("cpu")):
            for mouth in mouths:
                index = len(out)
                out.append(paste(frames[index % len(frames)], mouth, track.box_for(index), "exact"))
    return np.stack(out)


def _assert_frames_match(ours: np.ndarray, official: np.ndarray) -> None:
    diff = np.abs(ours.astype(np.int16) - official.astype(np.int16))
    assert diff.max() <= 1, f"max pixel difference {diff.max()}"


def test_still_image_case(golden, generator) -> None:
    official_frames = len(golden["A_frames_out"])  # 10, the last one tail-clamped
    windows = _windows(golden, 25.0)
    assert len(windows) == 13  # ceil(0.52 s * 25): the whole audio
    assert_parity(windows[: official_frames - 1], golden["A_mel_chunks"][:-1], ATOL, "A_mel_chunks")

    frames = [golden["A_still_bgr"]]
    track = FaceTrack([tuple(int(v) for v in golden["A_box_y1y2x1x2"])])
    faces = face_input(crop_faces(frames, track))
    assert_parity(faces[0], golden["A_face_input0"], ATOL, "A_face_input0")

    with torch.inference_mode():
        audio = torch.from_numpy(golden["A_mel_chunks"][:, None])
        output = generator(audio, torch.from_numpy(faces).expand(len(audio), -1, -1, -1)).numpy()
    assert_parity(output, golden["A_model_output"], ATOL, "A_model_output")

    rendered = _render(generator, frames, track, windows, batch_size=128)
    assert rendered.shape == (13, 120, 100, 3)
    _assert_frames_match(rendered[: official_frames - 1], golden["A_frames_out"][:-1])


def test_looping_video_case(golden, generator) -> None:
    frames = prepare_video_frames(golden["B_video_bgr"], resize_factor=2, rotate=False, crop=(0, -1, 0, -1))
    assert frames[0].shape == (80, 100, 3)
    box = tuple(int(v) for v in golden["B_box_y1y2x1x2"])
    track = FaceTrack([box] * len(frames))
    assert_parity(face_input(crop_faces(frames, track)), golden["B_face_inputs"], ATOL, "B_face_inputs")

    official_frames = len(golden["B_frames_out"])  # 12
    windows = _windows(golden, 30.0)
    assert len(windows) == 16  # ceil(0.52 s * 30)
    assert_parity(windows[: official_frames - 1], golden["B_mel_chunks"][:-1], ATOL, "B_mel_chunks")
    rendered = _render(generator, frames, track, windows, batch_size=4)
    _assert_frames_match(rendered[: official_frames - 1], golden["B_frames_out"][:-1])


@pytest.fixture(scope="module")
def still_case_files(golden, wav2lip_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The golden still case as files: face.png, speech.wav and a stand-in ``wav2lip.pth``."""
    folder = tmp_path_factory.mktemp("still-case")
    face = folder / "face.png"
    cv2.imwrite(str(face), golden["A_still_bgr"])
    audio = folder / "speech.wav"
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(golden["pcm16"].astype("<i2").tobytes())
    checkpoint = folder / "wav2lip.pth"
    state = standin_state_dict(wav2lip_data / "schema_wav2lip.json")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "optimizer": None}, checkpoint)
    return {"face": face, "audio": audio, "checkpoint": checkpoint}


def test_backend_render_to_png_frames_matches_the_official_output(
    golden, still_case_files: dict[str, Path], tmp_path: Path
) -> None:
    """The worker's own render path (decode, features, generator, paste, encode) on the still case.

    With ``box`` the host sends no detector weights, and the backend loads none.
    """
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()

    events = []
    backend = Wav2LipBackend("cpu")
    _output, stats = backend.render(
        {
            "face": str(still_case_files["face"]),
            "audio": str(still_case_files["audio"]),
            "output": str(frames_dir / "%05d.png"),
            "format": "png",
            "box": [int(v) for v in golden["A_box_y1y2x1x2"]],
            "paste": "exact",
            "weights": {"checkpoint": str(still_case_files["checkpoint"])},
        },
        Reporter(events.append, "test"),
    )
    files = sorted(frames_dir.glob("*.png"))
    assert stats["frames"] == len(files) == 13 and stats["fps"] == 25
    assert stats["model_loads"] == 1  # the generator only
    rendered = np.stack([cv2.imread(str(f)) for f in files])
    _assert_frames_match(rendered[:9], golden["A_frames_out"][:9])
    assert any(getattr(e, "stage", None) == "lip-syncing" for e in events)


def test_detection_without_detector_weights_is_an_internal_error(
    still_case_files: dict[str, Path], tmp_path: Path
) -> None:
    """Without ``box`` the request needs the detector; a host that did not send it has a bug."""
    output = tmp_path / "out.mp4"
    with pytest.raises(BackendError) as info:
        Wav2LipBackend("cpu").render(
            {
                "face": str(still_case_files["face"]),
                "audio": str(still_case_files["audio"]),
                "output": str(output),
                "weights": {"checkpoint": str(still_case_files["checkpoint"])},
            },
            Reporter(lambda _event: None, "test"),
        )
    assert info.value.code == ErrorCode.INTERNAL and "'detector'" in info.value.message
    assert list(tmp_path.iterdir()) == []
