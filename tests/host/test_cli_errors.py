"""Bad input through the real CLI: each gives its stable error code and leaves no output behind."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from media import ffmpeg


def _error(proc) -> tuple[str, int, str]:
    body = json.loads(proc.stdout)
    assert body["ok"] is False and body["kind"] == "error"
    return body["code"], proc.returncode, body["message"]


def _write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(("out", ".out")))


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder


def test_missing_image(render_wav2lip, speech_wav, out_dir: Path) -> None:
    proc = render_wav2lip(out_dir / "nope.jpg", speech_wav, out_dir / "out.mp4", "--json")
    code, status, message = _error(proc)
    assert (code, status) == ("bad_input", 65) and "nope.jpg" in message
    assert _leftovers(out_dir) == []


def test_unreadable_image(render_wav2lip, speech_wav, out_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "face.jpg"
    fake.write_text("this is not a picture")
    code, status, _ = _error(render_wav2lip(fake, speech_wav, out_dir / "out.mp4", "--json"))
    assert (code, status) == ("bad_input", 65)
    assert _leftovers(out_dir) == []


def test_image_without_a_face(
    standin_checkpoints, render_wav2lip, face_image, speech_wav, out_dir: Path
) -> None:
    blind = standin_checkpoints["detector"].with_name("s3fd_blind.pth")
    proc = render_wav2lip(face_image, speech_wav, out_dir / "out.mp4", "--json", detector=blind)
    code, status, message = _error(proc)
    assert (code, status) == ("no_face", 65) and "astronaut_256.jpg" in message
    assert _leftovers(out_dir) == []


def test_corrupt_audio(render_wav2lip, face_image, out_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "speech.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    code, status, _ = _error(render_wav2lip(face_image, corrupt, out_dir / "out.mp4", "--json"))
    assert (code, status) == ("bad_audio", 65)
    assert _leftovers(out_dir) == []


def test_empty_audio(render_wav2lip, face_image, out_dir: Path, tmp_path: Path) -> None:
    empty = _write_wav(tmp_path / "empty.wav", np.zeros(0))
    code, _, _ = _error(render_wav2lip(face_image, empty, out_dir / "out.mp4", "--json"))
    assert code == "bad_audio"
    assert _leftovers(out_dir) == []


def test_silent_audio(render_wav2lip, face_image, out_dir: Path, tmp_path: Path) -> None:
    silent = _write_wav(tmp_path / "silent.wav", np.zeros(16000))
    code, status, _ = _error(render_wav2lip(face_image, silent, out_dir / "out.mp4", "--json"))
    assert (code, status) == ("silent_audio", 65)
    assert _leftovers(out_dir) == []


def test_audio_shorter_than_one_mel_window(render_wav2lip, face_image, out_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    short = _write_wav(tmp_path / "short.wav", rng.integers(-3000, 3000, 1600))  # 0.1 s < 0.1875 s
    code, status, _ = _error(render_wav2lip(face_image, short, out_dir / "out.mp4", "--json"))
    assert (code, status) == ("audio_too_short", 65)
    assert _leftovers(out_dir) == []


def test_output_folder_under_a_file(render_wav2lip, face_image, speech_wav, tmp_path: Path) -> None:
    (tmp_path / "no").write_text("a file where a folder should be")
    target = tmp_path / "no" / "such" / "out.mp4"
    code, status, _ = _error(render_wav2lip(face_image, speech_wav, target, "--json"))
    assert (code, status) == ("output_unwritable", 73)
    assert (tmp_path / "no").read_text() == "a file where a folder should be"


def test_existing_output_needs_overwrite(render_wav2lip, face_image, speech_wav, out_dir: Path) -> None:
    target = out_dir / "out.mp4"
    target.write_bytes(b"keep me")
    code, status, _ = _error(render_wav2lip(face_image, speech_wav, target, "--json"))
    assert (code, status) == ("output_exists", 73)
    assert target.read_bytes() == b"keep me"
    assert _leftovers(out_dir) == ["out.mp4"]


def test_tampered_weights(
    run_cli, standin_checkpoints, face_image, speech_wav, out_dir: Path, lipsync_home: Path
) -> None:
    """A manifest file whose bytes changed is refused by name before anything loads it."""
    stored = lipsync_home / "weights" / "s3fd-619a316812.pth"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\0" * 89_843_225)  # right size, wrong content
    proc = run_cli(
        "run",
        "--model",
        "wav2lip",
        "--image",
        face_image,
        "--audio",
        speech_wav,
        "-o",
        out_dir / "out.mp4",
        "--device",
        "cpu",
        "--json",
        "--checkpoint",
        standin_checkpoints["generator"],
    )
    code, status, message = _error(proc)
    assert (code, status) == ("weights_mismatch", 66)
    assert "s3fd-619a316812.pth" in message
    assert _leftovers(out_dir) == []


def test_missing_weights_offline(run_cli, face_image, speech_wav, out_dir: Path) -> None:
    proc = run_cli(
        "run", "-m", "wav2lip", "-i", face_image, "-a", speech_wav, "-o", out_dir / "out.mp4", "--json"
    )
    code, status, message = _error(proc)
    assert (code, status) == ("weights_missing", 66)
    assert "wav2lip.pth" in message


def test_unknown_model(run_cli, face_image, speech_wav, out_dir: Path) -> None:
    proc = run_cli(
        "run", "-m", "nope", "-i", face_image, "-a", speech_wav, "-o", out_dir / "out.mp4", "--json"
    )
    code, status, _message = _error(proc)
    assert (code, status) == ("unknown_model", 2)
    assert "wav2lip" in json.loads(proc.stdout)["hint"]


def test_video_with_no_audio_stream_is_bad_audio(
    render_wav2lip, face_image, out_dir: Path, tmp_path: Path
) -> None:
    silent_clip = tmp_path / "clip.mp4"
    ffmpeg(
        "-loop",
        "1",
        "-i",
        str(face_image),
        "-t",
        "0.2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(silent_clip),
    )
    code, _, _ = _error(render_wav2lip(face_image, silent_clip, out_dir / "out.mp4", "--json"))
    assert code == "bad_audio"
