"""Speech and portrait from standard input (``-a -``, ``-i -``) and raw PCM with ``--audio-format``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.probe import probe
from media import decode_audio, decode_frames, ffmpeg

pytestmark = pytest.mark.slow


def _ok(proc) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _seconds(path: Path) -> float:
    return len(decode_audio(path)) / 16000


def _spool_left(home: Path) -> list[Path]:
    return sorted((home / "tmp").glob("*")) if (home / "tmp").exists() else []


def test_speech_piped_into_audio(render_wav2lip, face_image, speech_wav, tmp_path, lipsync_home) -> None:
    out = tmp_path / "out.mp4"
    result = _ok(render_wav2lip(face_image, "-", out, "--json", stdin=speech_wav.read_bytes()))
    assert result["output"] == str(out)
    assert abs(_seconds(out) - _seconds(speech_wav)) < 0.05
    assert result["frames"] == int(np.ceil(_seconds(speech_wav) * 25 - 1e-9))
    assert _spool_left(lipsync_home) == []  # the spooled copy is gone


def test_raw_pcm_with_its_format(render_wav2lip, face_image, speech_wav, tmp_path, lipsync_home) -> None:
    raw = ffmpeg("-i", str(speech_wav), "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1").stdout
    out = tmp_path / "out.mp4"
    _ok(render_wav2lip(face_image, "-", out, "--json", "--audio-format", "s16le:16000:1", stdin=raw))
    assert abs(_seconds(out) - len(raw) / 2 / 16000) < 0.05
    # The same samples as a file work the same way.
    raw_file = tmp_path / "speech.pcm"
    raw_file.write_bytes(raw)
    again = tmp_path / "again.mp4"
    _ok(render_wav2lip(face_image, raw_file, again, "--json", "--audio-format", "s16le:16000:1"))
    assert abs(_seconds(again) - _seconds(out)) < 1e-3
    assert _spool_left(lipsync_home) == []


def test_stdin_in_and_stdout_out(render_wav2lip, face_image, speech_wav, tmp_path) -> None:
    proc = render_wav2lip(face_image, "-", "-", stdin=speech_wav.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    streamed = tmp_path / "streamed.mp4"
    streamed.write_bytes(proc.stdout)
    info = probe(streamed)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    pictures = ffmpeg("-i", str(streamed), "-map", "0:v", "-fps_mode", "passthrough", "-f", "rawvideo",
                      "-pix_fmt", "bgr24", "pipe:1").stdout  # fmt: skip
    assert len(pictures) // (256 * 256 * 3) == int(np.ceil(_seconds(speech_wav) * 25 - 1e-9))
    # A fragmented MP4 keeps the AAC encoder's priming samples (no edit list): up to two AAC frames more.
    assert 0 <= _seconds(streamed) - _seconds(speech_wav) < 2 * 1024 / 16000 + 0.04


def test_video_piped_into_image(render_wav2lip, face_image, speech_wav, tmp_path) -> None:
    video = tmp_path / "portrait.mkv"
    ffmpeg("-loop", "1", "-i", str(face_image), "-t", "0.4", "-r", "25", "-c:v", "ffv1", str(video))
    out = tmp_path / "out.mp4"
    result = _ok(render_wav2lip("-", speech_wav, out, "--json", stdin=video.read_bytes()))
    # A 10-frame video at 25 fps, looped over the speech: its frame size and rate are kept.
    assert result["fps"] == 25
    assert len(decode_frames(out, 256, 256)) == result["frames"] > 10


@pytest.mark.parametrize(("flag", "code"), [("audio", "bad_audio"), ("image", "bad_input")])
def test_an_empty_pipe(render_wav2lip, face_image, speech_wav, tmp_path, lipsync_home, flag, code) -> None:
    out = tmp_path / "out.mp4"
    face, audio = ("-", speech_wav) if flag == "image" else (face_image, "-")
    proc = render_wav2lip(face, audio, out, "--json", stdin=b"")
    assert proc.returncode == 65
    error = json.loads(proc.stdout)
    assert error["code"] == code and "standard input was empty" in error["message"]
    assert not out.exists() and sorted(tmp_path.glob(".out*")) == []
    assert _spool_left(lipsync_home) == []


def test_both_inputs_from_stdin_is_refused(run_cli, tmp_path) -> None:
    proc = run_cli("run", "-m", "wav2lip", "-i", "-", "-a", "-", "-o", tmp_path / "o.mp4", stdin=b"x")
    assert proc.returncode == 2
    assert b"error [bad_option]: --image - and --audio - both read stdin" in proc.stderr


@pytest.mark.parametrize("text", ["s16le:16000", "pcm:16000:1", "s16le:0:1"])
def test_a_bad_audio_format(run_cli, tmp_path, text: str) -> None:
    proc = run_cli("run", "-m", "wav2lip", "-i", "f.png", "-a", "-", "-o", "o.mp4", "--audio-format", text)
    assert proc.returncode == 2
    assert b"error [bad_option]: --audio-format must be SAMPLES:RATE:CHANNELS" in proc.stderr
