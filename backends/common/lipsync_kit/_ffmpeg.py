"""ffmpeg plumbing for the whole kit: the binary, argv conventions, stderr tails, and the one parser of
the stream dump ``ffmpeg -i`` prints on stderr (the PyPI ffmpeg has no ffprobe).

Standard library + imageio-ffmpeg only: the host imports it through `lipsync_kit.probe`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Final

__all__ = [
    "DecodeFacts",
    "InputDump",
    "Stream",
    "base_argv",
    "decode_facts",
    "exact_fps",
    "ffmpeg_exe",
    "file_arg",
    "parse_input",
    "read_tail",
    "stderr_tail",
]

STDERR_TAIL_LINES: Final = 15  # lines of ffmpeg's stderr kept in error messages
STDERR_TAIL_CHARS: Final = 2000  # and at most this many characters of them
STDERR_READ_BYTES: Final = 64 * 1024  # how much of a long stderr file to read for its tail
NTSC_SNAP_HZ: Final = 0.006  # ffmpeg prints fps with 2 decimals; this close to N*1000/1001 means NTSC

_INPUT_RE: Final = re.compile(r"^Input #0, (?P<format>.+?), from ", re.MULTILINE)
_DURATION_RE: Final = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")
_STREAM_RE: Final = re.compile(
    r"^\s*Stream #0:\d+(?:\[[^\]]*\])?(?:\([^)]*\))?: (?P<kind>\w+): (?P<rest>.*)$", re.MULTILINE
)
_SIZE_RE: Final = re.compile(r", (?P<w>\d+)x(?P<h>\d+)(?=[ ,\[]|$)")  # not "(avc1 / 0x31637661)"
_FPS_RE: Final = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<k>k?) (?:fps|tbr)\b")  # "fps" comes before "tbr"
_RATE_RE: Final = re.compile(r", (?P<hz>\d+) Hz")


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary from imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def base_argv(loglevel: str = "error") -> list[str]:
    """``ffmpeg`` plus the options every call uses: no banner, no progress lines, no keyboard input."""
    return [ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", "-loglevel", loglevel]


def file_arg(path: str | os.PathLike[str]) -> str:
    """A path as an ffmpeg URL: ``file:`` keeps names with ``:`` or a leading ``-`` from being misread."""
    return "file:" + os.fspath(path)


def stderr_tail(text: bytes | str, max_lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-empty lines of ffmpeg's stderr, for an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    tail = "\n".join(lines[-max_lines:])
    return tail[-STDERR_TAIL_CHARS:] or "(ffmpeg printed nothing)"


def read_tail(stream: IO[bytes]) -> str:
    """`stderr_tail` of a temporary file that collected a process's stderr."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - STDERR_READ_BYTES))
    return stderr_tail(stream.read())


def exact_fps(printed: float) -> float:
    """Undo ffmpeg's 2-decimal rounding of NTSC rates (29.97 -> 30000/1001); other rates as printed."""
    nominal = round(printed * 1.001)
    if printed != round(printed) and abs(printed - nominal * 1000 / 1001) < NTSC_SNAP_HZ:
        return nominal * 1000 / 1001
    return printed


@dataclass(frozen=True)
class Stream:
    """One stream of an input as ffmpeg lists it."""

    kind: str  # "video", "audio", "subtitle", "data" ...
    codec: str  # "h264", "png", "aac" ...
    size: tuple[int, int] | None  # video: (width, height) as stored, before any rotation
    fps: float | None  # video: "fps" (else "tbr") as printed, NTSC rates made exact
    sample_rate: int | None  # audio: Hz


@dataclass(frozen=True)
class InputDump:
    """What ``ffmpeg -i`` says about its first input."""

    container: str | None  # demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "png_pipe" ...); None: unopenable
    duration: float | None  # seconds; None when ffmpeg prints N/A (e.g. single images)
    streams: tuple[Stream, ...]  # in file order

    def first(self, kind: str) -> Stream | None:
        """The first stream of a kind ("video", "audio" ...), or None."""
        return next((stream for stream in self.streams if stream.kind == kind), None)


def _stream(kind: str, rest: str) -> Stream:
    codec = rest.split(",")[0].split(" ")[0].strip()
    size = fps = rate = None
    if kind == "video":
        if found := _SIZE_RE.search(rest):
            size = (int(found["w"]), int(found["h"]))
        if found := _FPS_RE.search(rest):
            fps = exact_fps(float(found["value"]) * (1000 if found["k"] else 1))
    elif kind == "audio" and (found := _RATE_RE.search(rest)):
        rate = int(found["hz"])
    return Stream(kind, codec, size, fps, rate)


def parse_input(text: str) -> InputDump:
    """Parse the ``Input #0`` section of ffmpeg's stderr (up to ``Output #0`` when there is one)."""
    header = _INPUT_RE.search(text)
    if header is None:
        return InputDump(None, None, ())
    output_at = text.find("\nOutput #0", header.end())
    section = text[header.end() : output_at if output_at >= 0 else len(text)]
    duration = None
    if found := _DURATION_RE.search(section):
        duration = int(found["h"]) * 3600 + int(found["m"]) * 60 + float(found["s"])
    streams = tuple(_stream(s["kind"].lower(), s["rest"]) for s in _STREAM_RE.finditer(section))
    return InputDump(header["format"], duration, streams)


@dataclass(frozen=True)
class DecodeFacts:
    """What decoding the first video frame of a file told: enough to read all of its frames."""

    returncode: int
    stderr: str
    input: InputDump
    size: tuple[int, int] | None  # (width, height) of the decoded frames, after autorotation

    @property
    def container(self) -> str | None:
        return self.input.container

    @property
    def stream_kinds(self) -> tuple[str, ...]:
        return tuple(stream.kind for stream in self.input.streams)

    @property
    def fps(self) -> float | None:
        video = self.input.first("video")
        return video.fps if video is not None else None


def decode_facts(src: Path) -> DecodeFacts:
    """Decode one frame of the first video stream into the null muxer and read the stream dump."""
    argv = [*base_argv("info"), "-i", file_arg(src), "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    text = proc.stderr.decode("utf-8", errors="replace")
    output_at = text.find("\nOutput #0")
    output = _STREAM_RE.search(text, output_at) if output_at >= 0 else None
    size = _SIZE_RE.search(output["rest"]) if output else None
    return DecodeFacts(
        returncode=proc.returncode,
        stderr=text,
        input=parse_input(text),
        size=(int(size["w"]), int(size["h"])) if size else None,
    )
