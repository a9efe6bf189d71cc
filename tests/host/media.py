"""Small media helpers for host tests: speech from espeak-ng, decoding outputs with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from lipsync_kit.probe import ffmpeg_exe


def make_speech(path: Path, text: str, voice: str = "en-us") -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(path), text], check=True)
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
