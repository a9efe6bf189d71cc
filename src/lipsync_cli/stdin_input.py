"""Inputs from standard input (``--audio -``, ``--image -``) and headerless PCM (``--audio-format``).

Models need random access to their inputs, so what arrives on stdin is spooled to a private folder under
``LIPSYNC_HOME/tmp`` first; raw PCM is wrapped into a WAV file there. The folder goes away when the render
ends, however it ends.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from lipsync_kit.probe import ffmpeg_exe

from . import paths
from .errors import ErrorCode, LipsyncError

__all__ = ["STDIN", "InputSpool", "PcmFormat"]

STDIN: Final = "-"
_CHUNK: Final = 1 << 20
_SAMPLE_FORMATS: Final = ("u8", "s16le", "s16be", "s24le", "s32le", "f32le", "f64le")


@dataclass(frozen=True)
class PcmFormat:
    """Headerless samples: ``s16le:16000:1`` is 16-bit little-endian, 16 kHz, mono."""

    sample_format: str
    rate: int
    channels: int

    @classmethod
    def parse(cls, text: str) -> PcmFormat:
        match = re.fullmatch(r"([a-z0-9]+):(\d+):(\d+)", text.strip().lower())
        if match is None or match[1] not in _SAMPLE_FORMATS or not int(match[2]) or not int(match[3]):
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"--audio-format must be SAMPLES:RATE:CHANNELS such as s16le:16000:1, got {text!r}",
                hint=f"SAMPLES is one of {', '.join(_SAMPLE_FORMATS)}",
            )
        return cls(match[1], int(match[2]), int(match[3]))


class InputSpool:
    """A private folder for the inputs of one render; `close` (or the ``with`` block) removes it."""

    def __init__(self) -> None:
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            root = paths.home() / "tmp"
            root.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="input-", dir=root))  # mode 0700
        return self._folder

    def image(self, given: Path) -> Path:
        """The portrait's path: ``given``, or the file stdin was spooled to for ``-``."""
        if str(given) != STDIN:
            return given
        return self._spool(self.folder / "image", ErrorCode.BAD_INPUT, "--image")

    def audio(self, given: Path, pcm: PcmFormat | None) -> Path:
        """The speech's path: ``given`` or spooled stdin, wrapped into WAV when it is raw PCM."""
        source = given
        if str(given) == STDIN:
            source = self._spool(self.folder / "audio", ErrorCode.BAD_AUDIO, "--audio")
        if pcm is None:
            return source
        if not source.is_file():
            return source  # the usual "does not exist" check reports it
        return _wrap_pcm(source, pcm, self.folder / "audio.wav")

    def _spool(self, target: Path, code: str, flag: str) -> Path:
        stream = sys.stdin.buffer
        if stream.isatty():
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"{flag} - reads standard input, which is a terminal",
                hint=f"pipe the file in, e.g. cat speech.wav | lipsync run ... {flag} -",
            )
        if _copy(stream, target) == 0:
            raise LipsyncError(code, f"{flag} -: standard input was empty")
        return target

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> InputSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy(stream: BinaryIO, target: Path) -> int:
    size = 0
    with target.open("xb") as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            size += len(chunk)
    return size


def _wrap_pcm(source: Path, pcm: PcmFormat, target: Path) -> Path:
    """``source`` read as raw samples and written as a WAV file of the same sample format."""
    argv = [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
        "-f", pcm.sample_format, "-ar", str(pcm.rate), "-ac", str(pcm.channels), "-i", str(source),
        "-c:a", "pcm_" + pcm.sample_format.replace("be", "le"), str(target),  # WAV is little-endian
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not target.is_file():
        reason = done.stderr.strip().splitlines()[-1:] or ["ffmpeg failed"]
        raise LipsyncError(
            ErrorCode.BAD_AUDIO, f"cannot read the raw audio as {pcm.sample_format}: {reason[0]}"
        )
    return target
