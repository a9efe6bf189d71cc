"""Checks of a render request that run in the host before anything heavy starts (env, weights, worker).

Each check decodes what it needs with ffmpeg (types are found by decoding, never by extension) and
raises `LipsyncError` with the code the worker would have given, but seconds or minutes earlier.
``lipsync run`` and ``lipsync batch`` (for every line, up front) call the same functions.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lipsync_kit.probe import ffmpeg_exe, ffmpeg_reason, probe

from .catalogue import get_model
from .errors import ErrorCode, LipsyncError

__all__ = [
    "DEVICE_HINT",
    "REFERENCE_OPTIONS",
    "S3FD_MIN_SIDE",
    "SADTALKER_MIN_SIDE",
    "check_audio",
    "check_device",
    "check_face",
    "check_face_size",
    "check_not_an_input",
    "check_reference",
    "decoded_frames",
    "same_file",
]

DEVICE_HINT: Final = "use auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
_DEVICE: Final = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")
# S3FD halves the picture in 5 pooling stages; a side under 2**5 px reaches 0 and the network cannot run.
S3FD_MIN_SIDE: Final = 32
SADTALKER_MIN_SIDE: Final = (
    48  # the smallest face SadTalker accepts (its MIN_FACE_PX): no smaller picture has one
)
REFERENCE_OPTIONS: Final = ("ref_pose", "ref_eyeblink")  # SadTalker options that take a video


def check_device(value: str) -> str:
    """The ``--device`` value if its syntax is one the workers know (``bad_option`` if not).

    Whether the device exists is the worker's call (``device_unavailable``): only it imports torch.
    """
    if not _DEVICE.fullmatch(value.strip().lower()):
        raise LipsyncError(ErrorCode.BAD_OPTION, f"--device {value!r} is not a device", hint=DEVICE_HINT)
    return value


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: ``..``, ``.`` and symbolic links resolved (it need not exist)."""
    return a.resolve() == b.resolve()


@dataclass(frozen=True)
class Frames:
    """What decoding the first frames of the first video stream gave: how many, and why it stopped short."""

    count: int
    reason: str | None  # ffmpeg's reason when it failed, else None


def decoded_frames(path: Path, limit: int) -> Frames:
    """Decode up to ``limit`` frames of the first video stream (each shrunk to one pixel) and count them."""
    argv = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-i", "file:" + os.fspath(path), "-map", "0:v:0", "-frames:v", str(limit),
        "-vf", "scale=1:1", "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    count = len(proc.stdout)
    failed = proc.returncode != 0 or count == 0
    reason = ffmpeg_reason(proc.stderr.decode("utf-8", errors="replace")) if failed else None
    return Frames(count, reason)


def _check_file(path: Path, code: str, what: str) -> None:
    if path.is_dir():
        raise LipsyncError(code, f"the {what} {path} is a folder, not a file")
    if not path.exists():
        raise LipsyncError(code, f"the {what} {path} does not exist")
    if not path.is_file():
        raise LipsyncError(code, f"the {what} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise LipsyncError(code, f"the {what} {path} is not readable")


def check_face(face: Path) -> tuple[int, int]:
    """The portrait is a readable image or video whose first frame decodes (``bad_input`` if not).

    Returns its (width, height).
    """
    _check_file(face, ErrorCode.BAD_INPUT, "image/video file")
    info = probe(face)
    if not info.has_video or info.width is None or info.height is None:
        reason = info.error or "no picture in it"
        raise LipsyncError(ErrorCode.BAD_INPUT, f"{face} is not an image or a video ({reason})")
    if info.video_codec == "ansi":  # ffmpeg would draw a text file as a picture
        raise LipsyncError(ErrorCode.BAD_INPUT, f"{face} is a text file, not an image or a video")
    frames = decoded_frames(face, 1)
    if frames.count == 0:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"{face} does not decode as a picture ({frames.reason})")
    return info.width, info.height


def check_audio(audio: Path) -> None:
    """The speech file exists, is readable and has a decodable audio stream (``bad_audio`` if not)."""
    _check_file(audio, ErrorCode.BAD_AUDIO, "audio file")
    info = probe(audio)
    if not info.has_audio:
        raise LipsyncError(
            ErrorCode.BAD_AUDIO,
            f"{audio} has no audio that ffmpeg can decode ({info.error or 'no audio stream'})",
        )


def check_reference(path: Path, option: str) -> None:
    """A reference video (``--ref-pose``, ``--ref-eyeblink``) exists and decodes to more than one frame."""
    flag = "--" + option.replace("_", "-")
    _check_file(path, ErrorCode.BAD_INPUT, f"{flag} video")
    frames = decoded_frames(path, 2)
    if frames.count == 0:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"{flag} {path} is not a video ({frames.reason})")
    if frames.count < 2:
        raise LipsyncError(
            ErrorCode.BAD_INPUT,
            f"{flag} {path} is a still image, not a video",
            hint=f"{flag} copies motion from a video with several frames",
        )


def check_face_size(model_name: str, size: tuple[int, int], options: dict[str, Any]) -> None:
    """The picture is large enough for the model to find a face in it (``no_face`` if not)."""
    width, height = size
    model = get_model(model_name)
    if model.backend == "sadtalker":
        if min(width, height) < SADTALKER_MIN_SIDE:
            raise LipsyncError(
                ErrorCode.NO_FACE,
                f"the picture is only {width}x{height} px; SadTalker needs a face of at least "
                f"{SADTALKER_MIN_SIDE} px",
                hint="use a larger portrait",
            )
        return
    if options.get("box") is not None:  # a fixed box: nothing is detected
        return
    factor = max(1, int(options.get("resize_factor") or 1))
    width, height = width // factor, height // factor
    if options.get("rotate"):
        width, height = height, width
    top, bottom, left, right = options.get("crop") or (0, -1, 0, -1)
    width = (width if right == -1 else min(right, width)) - left
    height = (height if bottom == -1 else min(bottom, height)) - top
    if min(width, height) < S3FD_MIN_SIDE:
        raise LipsyncError(
            ErrorCode.NO_FACE,
            f"the picture is {size[0]}x{size[1]} px ({max(width, 0)}x{max(height, 0)} px to detect in); the "
            f"face detector needs at least {S3FD_MIN_SIDE}x{S3FD_MIN_SIDE} px",
            hint="use a larger picture, or give the face box with --box TOP BOTTOM LEFT RIGHT",
        )


def check_not_an_input(output: Path, inputs: dict[str, Path]) -> None:
    """The output is none of the request's inputs (``bad_option``): rendering would replace what it reads."""
    for option, path in inputs.items():
        if same_file(output, path):
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"the output {output} is the {option} input {path}",
                hint="pick another -o",
            )
