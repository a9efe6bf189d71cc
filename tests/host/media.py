"""Small media helpers for host tests: the committed speech clips, decoding outputs with ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from lipsync_kit.probe import ffmpeg_exe

SPEECH_DIR = Path(__file__).resolve().parents[1] / "data" / "speech"
# espeak-ng speech committed as 22.05 kHz mono 16-bit WAV (tests/data/README.md says how they were made).
SPEECH_CLIPS = {
    "hello": "hello_there.wav",  # "Hello there.", 1.03 s
    "hi": "hi.wav",  # "Hi.", 0.68 s
    "long": "long_sentence.wav",  # a 5.3 s sentence
    "lips": "lips_check.wav",  # "Hello there. This clip checks that the lips move with the words.", 3.96 s
    "hi_there": "hi_there.wav",  # "Hi there.", 0.96 s
}


def speech(name: str) -> Path:
    """The committed speech clip ``name`` (a key of SPEECH_CLIPS), read in place."""
    return SPEECH_DIR / SPEECH_CLIPS[name]


def copy_speech(name: str, path: Path) -> Path:
    """A copy of the speech clip ``name`` at ``path`` (for tests that need it in their own folder)."""
    shutil.copyfile(speech(name), path)
    return path


def ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args], capture_output=True, check=True
    )


def decode_frames(path: Path, width: int, height: int) -> np.ndarray:
    """Every video frame of a file as (N, H, W, 3) uint8 BGR."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def decode_audio(path: Path, rate: int = 16000) -> np.ndarray:
    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-vn",
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "pipe:1",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.float32)
