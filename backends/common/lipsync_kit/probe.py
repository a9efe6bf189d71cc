"""What a media file holds, read from ``ffmpeg -i`` (the PyPI ffmpeg ships no ffprobe).

Standard library + imageio-ffmpeg only: the host imports this module to validate inputs before
anything heavy starts, and the backends use it too.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

__all__ = ["MediaInfo", "ffmpeg_exe", "ffmpeg_reason", "probe"]

_DURATION: Final = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM: Final = re.compile(r"Stream #\d+:\d+.*?: (Video|Audio): (.*)")
_SIZE: Final = re.compile(r", (\d{1,5})x(\d{1,5})[,\s\[]")
_FPS: Final = re.compile(r", (\d+(?:\.\d+)?(?:k)?) fps")
_TBR: Final = re.compile(r", (\d+(?:\.\d+)?(?:k)?) tbr")
_RATE: Final = re.compile(r", (\d+) Hz")
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


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary from imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """The first video and audio stream of a file, as ffmpeg reports them."""

    path: Path
    duration: float | None  # seconds; None when ffmpeg reports N/A (e.g. single images)
    video_codec: str | None
    width: int | None
    height: int | None
    fps: float | None
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


def _rate(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def probe(path: Path) -> MediaInfo:
    """Run ``ffmpeg -i`` on a file and parse what it says about the streams."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        check=False,
    )
    text = proc.stderr
    duration = None
    if match := _DURATION.search(text):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video_codec = width = height = fps = audio_codec = sample_rate = None
    for kind, rest in _STREAM.findall(text):
        codec = rest.split(",")[0].split(" ")[0].strip()
        if kind == "Video" and video_codec is None:
            video_codec = codec
            if size := _SIZE.search(rest):
                width, height = int(size.group(1)), int(size.group(2))
            if rate := _FPS.search(rest) or _TBR.search(rest):
                fps = _rate(rate.group(1))
        elif kind == "Audio" and audio_codec is None:
            audio_codec = codec
            if rate := _RATE.search(rest):
                sample_rate = int(rate.group(1))
    error = None
    if video_codec is None and audio_codec is None:
        error = ffmpeg_reason(text)
    return MediaInfo(path, duration, video_codec, width, height, fps, audio_codec, sample_rate, error)
