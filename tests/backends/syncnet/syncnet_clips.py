"""Inputs of the SyncNet tests, rebuilt as make_syncnet_goldens.py made them, and lossless test clips."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from lipsync_kit.probe import ffmpeg_exe


def clip_frames(base: np.ndarray, count: int) -> list[np.ndarray]:
    """The goldens' clip (make_syncnet_goldens.py): frame k rolled by (k % 5 - 2, (k // 5) % 3 - 1) px."""
    return [np.roll(base, ((k % 5) - 2, ((k // 5) % 3) - 1), axis=(0, 1)) for k in range(count)]


def speech(num_samples: int, seed: int = 7) -> np.ndarray:
    """make_syncnet_goldens.speech: a voiced, syllable-modulated signal as int16."""
    t = np.arange(num_samples) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    noise = np.random.Generator(np.random.PCG64(seed)).standard_normal(num_samples)
    return np.round(6000 * envelope * voiced + 300 * noise).astype(np.int16)


def write_clip(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, fps: int = 25) -> Path:
    """A lossless Matroska clip (FFV1 + 16-bit PCM at 16 kHz) of BGR frames and int16 samples."""
    height, width = frames[0].shape[:2]
    argv = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{width}x{height}",
    ]
    argv += ["-r", str(fps), "-i", "pipe:0"]
    with tempfile.NamedTemporaryFile(suffix=".raw") as raw:
        if audio is not None:
            raw.write(audio.astype("<i2").tobytes())
            raw.flush()
            argv += ["-f", "s16le", "-ar", "16000", "-ac", "1", "-i", raw.name, "-c:a", "pcm_s16le"]
        argv += ["-c:v", "ffv1", "-pix_fmt", "bgr0", str(path)]
        subprocess.run(argv, input=b"".join(f.tobytes() for f in frames), check=True)
    return path
