"""End to end through the real CLI: real env, real worker subprocess, real ffmpeg, stand-in weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.probe import probe
from media import decode_audio, decode_frames, ffmpeg

pytestmark = pytest.mark.slow


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_still_image_to_mp4(
    standin_checkpoints, render_wav2lip, face_image, speech_wav, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    result = _json(render_wav2lip(face_image, speech_wav, out, "--json"))

    audio_seconds = len(decode_audio(speech_wav)) / 16000
    expected_frames = int(np.ceil(audio_seconds * 25 - 1e-9))
    assert result["output"] == str(out)
    assert result["model"] == "wav2lip" and result["device"] == "cpu"
    assert result["frames"] == expected_frames and result["fps"] == 25
    assert result["weights"]["checkpoint"] == {
        "path": str(standin_checkpoints["generator"]),
        "sha256": "custom",
    }
    assert result["weights"]["detector"]["sha256"] == "custom"
    assert {"env", "worker_start", "detection", "inference", "encode", "total"} <= set(result["seconds"])
    assert result["backend_version"]

    info = probe(out)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.width, info.height) == (256, 256) and info.fps == 25
    frames = decode_frames(out, 256, 256)
    assert len(frames) == expected_frames
    # The video covers the whole audio track (the official output ends 0.1-0.2 s early).
    assert len(frames) / 25 >= audio_seconds
    assert abs(len(decode_audio(out)) / 16000 - audio_seconds) < 0.05


def test_png_frames_leave_everything_outside_the_face_box_untouched(
    render_wav2lip, face_image, speech_wav, tmp_path: Path
) -> None:
    png_face = tmp_path / "face.png"  # lossless, so every decoder sees the same pixels (JPEG decoders differ)
    ffmpeg("-i", str(face_image), str(png_face))
    pattern = tmp_path / "frames" / "%04d.png"
    pattern.parent.mkdir()
    result = _json(render_wav2lip(png_face, speech_wav, pattern, "--json", "--paste", "exact"))

    files = sorted(pattern.parent.glob("*.png"))
    assert len(files) == result["frames"] > 0
    source = decode_frames(png_face, 256, 256)[0]
    box = result["face_box"]
    outside = np.ones(source.shape[:2], bool)
    outside[box["top"] : box["bottom"], box["left"] : box["right"]] = False
    changed_inside = 0
    for file in files:
        frame = decode_frames(file, 256, 256)[0]
        np.testing.assert_array_equal(frame[outside], source[outside])
        changed_inside += int((frame[~outside] != source[~outside]).any())
    assert changed_inside == len(files)  # the generator really drew every frame


def test_stdout_stream_is_a_decodable_fragmented_mp4(
    render_wav2lip, face_image, speech_wav, tmp_path: Path
) -> None:
    proc = render_wav2lip(face_image, speech_wav, "-")
    assert proc.returncode == 0, proc.stderr.decode()
    streamed = tmp_path / "streamed.mp4"
    streamed.write_bytes(proc.stdout)
    info = probe(streamed)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert len(decode_frames(streamed, 256, 256)) > 10


def test_video_input_to_mkv_loops_frames(render_wav2lip, face_image, speech_wav, tmp_path: Path) -> None:
    clip = tmp_path / "face.mp4"
    ffmpeg(
        "-loop",
        "1",
        "-i",
        str(face_image),
        "-t",
        "0.4",
        "-r",
        "30",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(clip),
    )
    out = tmp_path / "out.mkv"
    result = _json(render_wav2lip(clip, speech_wav, out, "--json", "--box", "60", "200", "50", "200"))
    assert result["fps"] == 30
    assert result["face_box"] == {"top": 60, "bottom": 200, "left": 50, "right": 200}
    info = probe(out)
    assert info.audio_codec == "aac" and info.fps == 30
    assert len(decode_frames(out, 256, 256)) == result["frames"] > 12  # more frames than the 12-frame input


def test_text_output_is_the_path(render_wav2lip, face_image, speech_wav, tmp_path: Path) -> None:
    out = tmp_path / "plain.mp4"
    proc = render_wav2lip(face_image, speech_wav, out)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == str(out)
    assert re.search(r"lip-syncing", proc.stderr.decode())


def test_box_renders_without_any_detector_file(
    run_cli, standin_checkpoints, face_image, speech_wav, lipsync_home: Path, tmp_path: Path
) -> None:
    """``--box`` skips detection: an empty, offline weights store must not be asked for the S3FD file."""
    out = tmp_path / "boxed.mp4"
    proc = run_cli(
        "run", "--model", "wav2lip", "--image", face_image, "--audio", speech_wav, "-o", out,
        "--device", "cpu", "--checkpoint", standin_checkpoints["generator"],
        "--box", "60", "200", "50", "200", "--json",
    )  # fmt: skip
    result = _json(proc)
    assert set(result["weights"]) == {"checkpoint"}
    assert result["face_box"] == {"top": 60, "bottom": 200, "left": 50, "right": 200}
    assert "detection" not in result["seconds"] or result["seconds"]["detection"] < 1
    assert not (lipsync_home / "weights").exists() or not any((lipsync_home / "weights").iterdir())
    assert probe(out).video_codec == "h264"
