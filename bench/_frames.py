"""Decode two rendered videos and compare their frames inside and outside the face box."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lipsync_kit.probe import ffmpeg_exe, probe


def decode_rgb(path: Path) -> np.ndarray:
    """(frames, height, width, 3) uint8 RGB, decoded with ffmpeg."""
    info = probe(path)
    if info.width is None or info.height is None:
        raise RuntimeError(f"{path} has no video stream")
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)


@dataclass(frozen=True)
class FrameDiff:
    """How far two videos' common frames are apart (absolute 8-bit differences)."""

    frames: tuple[int, int]  # frames in each video
    compared: int
    max_inside: int
    mean_inside: float
    max_outside: int
    mean_outside: float

    def summary(self) -> str:
        return (
            f"{self.compared} frames compared (of {self.frames[0]} and {self.frames[1]}); "
            f"inside the face box max {self.max_inside}, mean {self.mean_inside:.2f}; "
            f"outside max {self.max_outside}, mean {self.mean_outside:.2f}"
        )


def compare(a: Path, b: Path, box: tuple[int, int, int, int], skip_last: int = 1) -> FrameDiff:
    """Compare the frames both videos have, less the last ``skip_last`` of the shorter one
    (the official Wav2Lip clamps its last mel window, so its last frame differs on purpose)."""
    first, second = decode_rgb(a), decode_rgb(b)
    count = max(min(len(first), len(second)) - skip_last, 0)
    diff = np.abs(first[:count].astype(np.int16) - second[:count].astype(np.int16))
    inside = np.zeros(diff.shape[1:3], bool)
    y1, y2, x1, x2 = box
    inside[y1:y2, x1:x2] = True
    return FrameDiff(
        frames=(len(first), len(second)),
        compared=count,
        max_inside=int(diff[:, inside].max(initial=0)),
        mean_inside=float(diff[:, inside].mean()) if count else 0.0,
        max_outside=int(diff[:, ~inside].max(initial=0)),
        mean_outside=float(diff[:, ~inside].mean()) if count else 0.0,
    )
