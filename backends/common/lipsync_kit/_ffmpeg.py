"""ffmpeg plumbing shared by `audio` and `video`: argv conventions, stderr tails, and the facts a
decoder needs from the stream dump ``ffmpeg -i`` prints on stderr (the PyPI ffmpeg has no ffprobe;
`lipsync_kit.probe` is the general-purpose reader of that dump).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from .probe import ffmpeg_exe

__all__ = ["DecodeFacts", "base_argv", "decode_facts", "exact_fps", "file_arg", "read_tail", "stderr_tail"]

STDERR_TAIL_LINES: Final = 15  # lines of ffmpeg's stderr kept in error messages
STDERR_TAIL_CHARS: Final = 2000  # and at most this many characters of them
STDERR_READ_BYTES: Final = 64 * 1024  # how much of a long stderr file to read for its tail
NTSC_SNAP_HZ: Final = 0.006  # ffmpeg prints fps with 2 decimals; this close to N*1000/1001 means NTSC

_INPUT_RE: Final = re.compile(r"^Input #0, (?P<format>.+?), from ", re.MULTILINE)
_STREAM_RE: Final = re.compile(
    r"^\s*Stream #0:\d+(?:\[[^\]]*\])?(?:\([^)]*\))?: (?P<kind>\w+): (?P<rest>.*)$", re.MULTILINE
)
_SIZE_RE: Final = re.compile(r", (?P<w>\d+)x(?P<h>\d+)(?=[ ,]|$)")  # not "(avc1 / 0x31637661)"
_FPS_RE: Final = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<k>k?) (?:fps|tbr)\b")


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
class DecodeFacts:
    """What decoding the first video frame of a file told: enough to read all of its frames."""

    returncode: int
    stderr: str
    container: str | None  # demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "png_pipe" ...); None: unopenable
    stream_kinds: tuple[str, ...]  # "video", "audio" ... in file order
    fps: float | None  # first video stream: "fps" (else "tbr") as printed, NTSC rates made exact
    size: tuple[int, int] | None  # (width, height) of the decoded frames, after autorotation


def decode_facts(src: Path) -> DecodeFacts:
    """Decode one frame of the first video stream into the null muxer and read the stream dump."""
    argv = [*base_argv("info"), "-i", file_arg(src), "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    text = proc.stderr.decode("utf-8", errors="replace")
    header = _INPUT_RE.search(text)
    if header is None:
        return DecodeFacts(proc.returncode, text, None, (), None, None)
    output_at = text.find("\nOutput #0", header.end())
    inputs = text[header.end() : output_at if output_at >= 0 else len(text)]
    streams = list(_STREAM_RE.finditer(inputs))
    video = next((s["rest"] for s in streams if s["kind"] == "Video"), None)
    rate = _FPS_RE.search(video) if video else None
    fps = exact_fps(float(rate["value"]) * (1000 if rate["k"] else 1)) if rate else None
    output = _STREAM_RE.search(text, output_at) if output_at >= 0 else None
    size = _SIZE_RE.search(output["rest"]) if output else None
    return DecodeFacts(
        returncode=proc.returncode,
        stderr=text,
        container=header["format"],
        stream_kinds=tuple(s["kind"].lower() for s in streams),
        fps=fps,
        size=(int(size["w"]), int(size["h"])) if size else None,
    )
