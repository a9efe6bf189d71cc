"""Decoding for the sync check: video frames resampled to 25 fps (streamed) and 16-bit speech at 16 kHz.

syncnet_python first re-encodes the video with ``ffmpeg -r 25`` (MPEG-4 in AVI, then JPEG frames) and
takes ``pcm_s16le`` mono 16 kHz audio from it. Here ffmpeg's ``fps=25`` filter gives the same frame
choice straight from the source, without the two lossy re-encodes, and the audio is rounded to 16-bit
values as the official WAV holds them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
from lipsync_kit._ffmpeg import base_argv, decode_facts, file_arg, read_tail, stderr_tail
from lipsync_kit.audio import load_audio
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.video_source import is_image_container

from .mfcc import SAMPLE_RATE

__all__ = ["FPS", "VideoInfo", "iter_frames", "load_speech", "probe_video"]

FPS: Final = 25
BAD_VIDEO_HINT: Final = "give a video file with a face that ffmpeg can decode"


class VideoInfo:
    """Size, and whether the file carries an audio stream."""

    def __init__(self, width: int, height: int, has_audio: bool) -> None:
        self.width, self.height, self.has_audio = width, height, has_audio


def probe_video(path: Path) -> VideoInfo:
    """Check that ``path`` is a decodable video; raise ``bad_input`` with ffmpeg's words if not."""
    if not path.is_file():
        raise BackendError(ErrorCode.BAD_INPUT, f"video not found: {path}", BAD_VIDEO_HINT)
    facts = decode_facts(path)
    if facts.container is None or facts.returncode != 0 or facts.size is None:
        said = stderr_tail(facts.stderr)
        kinds = ", ".join(facts.stream_kinds)
        what = f"{path} has no picture ({kinds} streams only)" if kinds else f"{path} is not a video:\n{said}"
        raise BackendError(ErrorCode.BAD_INPUT, what, BAD_VIDEO_HINT)
    if is_image_container(facts.container):
        raise BackendError(
            ErrorCode.BAD_INPUT, f"{path} is a still image; lip sync needs a video", BAD_VIDEO_HINT
        )
    return VideoInfo(*facts.size, has_audio="audio" in facts.stream_kinds)


def iter_frames(path: Path, info: VideoInfo) -> Iterator[np.ndarray]:
    """Every frame at 25 fps, (H, W, 3) uint8 BGR, one at a time (bounded memory at any length)."""
    argv = [
        *base_argv(),
        "-i",
        file_arg(path),
        "-map",
        "0:v:0",
        "-vf",
        f"fps={FPS}",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "pipe:1",
    ]
    size = info.width * info.height * 3
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        count = 0
        try:
            while len(data := proc.stdout.read(size)) == size:
                count += 1
                yield np.frombuffer(data, dtype=np.uint8).reshape(info.height, info.width, 3)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            returncode = proc.wait()
        if returncode != 0 or count == 0:
            raise BackendError(
                ErrorCode.BAD_INPUT,
                f"cannot decode the frames of {path} (ffmpeg exit status {returncode}):\n{read_tail(stderr)}",
                BAD_VIDEO_HINT,
            )


def load_speech(path: str | os.PathLike[str]) -> np.ndarray:
    """(N,) float64 16-bit sample values at 16 kHz, mono (the first audio stream of any file)."""
    samples = load_audio(path, SAMPLE_RATE)
    return np.clip(np.round(samples.astype(np.float64) * 32768.0), -32768, 32767)
