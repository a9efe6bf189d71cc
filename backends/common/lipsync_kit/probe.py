"""What a media file holds, read from ``ffmpeg -i`` (the PyPI ffmpeg ships no ffprobe).

Standard library + imageio-ffmpeg only: the host imports this module to validate inputs before
anything heavy starts, and the backends use it too. The dump is parsed by `_ffmpeg.parse_input`, the
same parser the video reader uses.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._ffmpeg import ffmpeg_exe, file_arg, parse_input

__all__ = ["MediaInfo", "ffmpeg_exe", "ffmpeg_reason", "probe"]

_LOG_TAGS: Final = re.compile(r"^(?:\[[^\]]* @ 0x[0-9a-f]+\]\s*)+")  # "[mjpeg @ 0x55…] " prefixes
_OPEN_FAILED: Final = re.compile(r"Error opening input(?: files?)?: (.+)")
_NO_STREAM: Final = re.compile(r"Stream map '.*' matches no streams")
_ERRORISH: Final = re.compile(
    r"error|invalid|\bno\b|\bnot\b|fail|cannot|could not|unsupported|missing|corrupt|truncat|overread", re.I
)
_STILL_CODECS: Final = (
    "png",
    "mjpeg",
    "bmp",
    "tiff",
    "webp",
    "gif",
    "jpegls",
    "jpeg2000",
    "ppm",
    "pgm",
    "pam",
)


@dataclass(frozen=True)
class MediaInfo:
    """The first video and audio stream of a file, as ffmpeg reports them."""

    path: Path
    duration: float | None  # seconds; None when ffmpeg reports N/A (e.g. single images)
    video_codec: str | None
    width: int | None
    height: int | None
    fps: float | None  # "fps" (else "tbr") as printed, NTSC rates made exact (29.97 -> 30000/1001)
    audio_codec: str | None
    sample_rate: int | None
    error: str | None  # why ffmpeg could not open the file (`ffmpeg_reason`)

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def looks_still(self) -> bool:
        """A single-picture codec (PNG, JPEG …), as opposed to a video stream."""
        return self.video_codec is not None and self.video_codec.startswith(_STILL_CODECS)


def ffmpeg_reason(stderr: str) -> str:
    """The cause of an ffmpeg failure in a few words, for a message: never its whole log.

    ffmpeg's verdict on an input it cannot open wins ("Invalid data found when processing input"),
    else its first line that reads like an error (the log may hold stream dumps before it), without
    the ``[decoder @ 0x…]`` tags.
    """
    lines = [_LOG_TAGS.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if found := _OPEN_FAILED.search(line):
            return found.group(1).rstrip(".")
        if _NO_STREAM.search(line):
            return "no such stream"
    errors = [line for line in lines if _ERRORISH.search(line)]
    return (errors or lines or ["ffmpeg gave no reason"])[0].rstrip(".")


def probe(path: Path) -> MediaInfo:
    """Run ``ffmpeg -i`` on a file and parse what it says about the streams."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", file_arg(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        check=False,
    )
    dump = parse_input(proc.stderr)
    video, audio = dump.first("video"), dump.first("audio")
    error = None
    if video is None and audio is None:
        error = ffmpeg_reason(proc.stderr)
    width, height = video.size if video is not None and video.size is not None else (None, None)
    return MediaInfo(
        path=path,
        duration=dump.duration,
        video_codec=video.codec if video is not None else None,
        width=width,
        height=height,
        fps=video.fps if video is not None else None,
        audio_codec=audio.codec if audio is not None else None,
        sample_rate=audio.sample_rate if audio is not None else None,
        error=error,
    )
