"""SadTalker end to end through the real CLI: real env, worker and ffmpeg; stand-in weights, few frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.probe import probe
from media import decode_audio, decode_frames, ffmpeg

pytestmark = pytest.mark.slow

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path) -> Path:
    """0.2 s of voiced speech: 5 frames, three renderer batches on the CPU (batch 2)."""
    out = tmp_path_factory.mktemp("short") / "short.wav"
    ffmpeg("-i", str(speech_wav), "-ss", "0.25", "-t", "0.2", str(out))
    return out


@pytest.fixture(scope="module")
def portrait_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """astronaut_512.jpg as lossless PNG, so the test and the backend see the very same pixels.

    (ffmpeg's JPEG decoder may differ by a level from OpenCV's; the stand-in detector still finds the face.)
    """
    out = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    ffmpeg("-i", str(DATA_DIR / "astronaut_512.jpg"), str(out))
    return out


def test_sadtalker_talking_head_mp4(render_sadtalker, short_speech: Path, tmp_path: Path) -> None:
    out = tmp_path / "talk.mp4"
    result = _json(
        render_sadtalker(
            "sadtalker", DATA_DIR / "astronaut_512.jpg", short_speech, out, "--json", "--seed", "7"
        )
    )

    audio_seconds = len(decode_audio(short_speech)) / 16000
    frames = math.ceil(audio_seconds * 25 - 1e-6)
    assert result["model"] == "sadtalker" and result["backend"] == "sadtalker"
    assert (result["frames"], result["fps"], result["seed"]) == (frames, 25, 7)
    assert (result["preprocess"], result["still"], result["size"]) == ("crop", False, 256)
    assert set(result["weights"]) == {"bundle", "mapping", "detector", "landmarks"}
    assert {entry["sha256"] for entry in result["weights"].values()} == {"custom"}
    assert result["face_box"] == [181.0, 70.0, 268.0, 184.0]
    assert {"crop_3dmm", "audio_to_coeffs", "render", "encode", "total"} <= set(result["seconds"])

    info = probe(out)
    assert (info.video_codec, info.audio_codec, info.fps) == ("h264", "aac", 25)
    assert (info.width, info.height) == (result["width"], result["height"]) and info.width == 256
    video = decode_frames(out, info.width, info.height)
    assert len(video) == frames
    assert len(video) / 25 >= audio_seconds  # the video covers the whole speech
    assert abs(len(decode_audio(out)) / 16000 - audio_seconds) < 0.05


def test_sadtalker_still_pastes_into_an_unchanged_background(
    render_sadtalker, short_speech: Path, portrait_png: Path, tmp_path: Path
) -> None:
    pattern = tmp_path / "frames" / "%03d.png"
    pattern.parent.mkdir()
    result = _json(
        render_sadtalker(
            "sadtalker-still", portrait_png, short_speech, pattern, "--json", "--seed", "1", full=True
        )
    )

    assert (result["preprocess"], result["still"], result["paste"]) == ("full", True, "blend")
    assert (result["width"], result["height"]) == (512, 512)
    files = sorted(pattern.parent.glob("*.png"))
    assert len(files) == result["frames"] == 5
    source = decode_frames(portrait_png, 512, 512)[0]
    x1, y1, x2, y2 = result["crop_region"]
    outside = np.ones(source.shape[:2], bool)
    outside[max(0, y1) : y2, max(0, x1) : x2] = False
    assert 0.5 < outside.mean() < 0.95  # the head box is a part of the picture, not all of it
    for file in files:
        frame = decode_frames(file, 512, 512)[0]
        np.testing.assert_array_equal(frame[outside], source[outside])  # background and body untouched
        assert np.abs(frame[~outside].astype(int) - source[~outside]).mean() > 1  # the head was re-drawn


def test_sadtalker_rejects_options_of_other_models(run_cli, short_speech: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "run", "-m", "sadtalker", "-i", DATA_DIR / "astronaut_512.jpg", "-a", short_speech, "-o",
        tmp_path / "x.mp4", "--pads", "0", "20", "0", "0",
    )  # fmt: skip
    assert proc.returncode == 2
    assert b"bad_option" in proc.stderr and b"pads" in proc.stderr
    assert not (tmp_path / "x.mp4").exists()
