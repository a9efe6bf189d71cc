"""Pictures in and video out: read a still or a video into BGR frames, and write frames plus the
speech track through one ffmpeg process, atomically.

Whether an input is a still or a video is decided by decoding it, never by its extension.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal

import cv2
import numpy as np

from ._ffmpeg import base_argv, decode_facts, file_arg, read_tail, stderr_tail
from .errors import BackendError
from .files import container_for, partial_path
from .probe import ffmpeg_reason
from .protocol import ErrorCode

__all__ = [
    "OutputFormat",
    "VideoWriter",
    "Visual",
    "read_visual",
]

OutputFormat = Literal["mp4", "mkv", "png"]

PNG_FRAME_NAME: Final = "%05d.png"  # frame files inside a folder given as a PNG output
DEFAULT_CRF: Final = 18  # x264 quality: visually lossless for talking heads
DEFAULT_PRESET: Final = "veryfast"  # encoding must never be the slow stage next to the model
AUDIO_BITRATE: Final = "128k"
FPS_MAX_DENOMINATOR: Final = 10_000  # fps floats become exact rationals: 29.97002997 -> 30000/1001
IMAGE_DEMUXERS: Final = frozenset({"image2", "gif", "apng", "webp"})  # plus every "*_pipe" image demuxer
# swscale's default fast paths shift RGB <-> YUV round trips by about -2 levels; these make them unbiased.
SWS_FLAGS: Final = "bicubic+accurate_rnd+full_chroma_int"
BAD_INPUT_HINT: Final = "give an image (png, jpg, ...) or a video file that ffmpeg can decode"


# ----------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Visual:
    """The face input: a still (one frame, no frame rate) or every frame of a video."""

    frames: list[np.ndarray]  # each (H, W, 3) uint8 BGR, all the same size
    fps: float | None  # None for a still (and for a video whose stream states no rate)
    is_still: bool

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        height, width = self.frames[0].shape[:2]
        return width, height

    def __len__(self) -> int:
        return len(self.frames)


def _existing_input(path: str | os.PathLike[str]) -> Path:
    src = Path(path)
    if not src.exists():
        raise BackendError(ErrorCode.BAD_INPUT, f"input file not found: {src}", BAD_INPUT_HINT)
    if not src.is_file():
        raise BackendError(ErrorCode.BAD_INPUT, f"input path is not a file: {src}", BAD_INPUT_HINT)
    return src


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) image of any depth as uint8 (16-bit by rounding x / 257, float from [0, 1])."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image / 257.0).astype(np.uint8)
    return np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def _read_still(src: Path) -> np.ndarray | None:
    """The picture in `src` if OpenCV reads it as exactly one image, else None.

    OpenCV applies the EXIF orientation, expands grayscale to 3 channels and drops alpha
    (``IMREAD_COLOR``); ``IMREAD_ANYDEPTH`` keeps 16 bits so they can be rounded, not truncated.
    """
    try:
        if not cv2.haveImageReader(str(src)) or cv2.imcount(str(src)) != 1:
            return None  # not an image format OpenCV knows, or an animation (ffmpeg has its timing)
        image = cv2.imdecode(np.fromfile(src, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error:
        return None
    return None if image is None else _to_bgr8(image)


def _probe_video(src: Path) -> tuple[str, float | None, int, int]:
    """(demuxer, fps, width, height) of the first video stream, by decoding its first frame."""
    facts = decode_facts(src)
    if facts.container is not None and "video" not in facts.stream_kinds:
        kinds = ", ".join(facts.stream_kinds) or "no"
        raise BackendError(
            ErrorCode.BAD_INPUT, f"{src} has no picture ({kinds} streams only)", BAD_INPUT_HINT
        )
    if facts.container is None or facts.returncode != 0 or facts.size is None:
        print(stderr_tail(facts.stderr), file=sys.stderr)  # the whole story goes to the worker's log
        raise BackendError(
            ErrorCode.BAD_INPUT,
            f"{src} is not an image or a video ffmpeg can decode ({ffmpeg_reason(facts.stderr)})",
            BAD_INPUT_HINT,
        )
    if facts.container == "tty":  # ffmpeg would render a text file as ANSI art
        raise BackendError(
            ErrorCode.BAD_INPUT, f"{src} is a text file, not an image or video", BAD_INPUT_HINT
        )
    return facts.container, facts.fps, *facts.size


def _read_exact(stream: IO[bytes], size: int) -> bytearray | None:
    """Exactly `size` bytes, or None at the end of the stream (a cut-off last frame is dropped)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            return None
        filled += count
    return buffer


def _read_video(src: Path, max_frames: int | None) -> Visual:
    container, fps, width, height = _probe_video(src)
    argv = [
        *base_argv(),
        "-i",
        file_arg(src),
        "-map",
        "0:v:0",
        "-sws_flags",
        SWS_FLAGS,
        "-fps_mode",
        "passthrough",  # every decoded frame once, as OpenCV's VideoCapture gives them
        "-vf",
        f"scale={width}:{height}",  # a stream that changes size mid-way still yields fixed frames
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        *(["-frames:v", str(max_frames)] if max_frames is not None else []),
        "pipe:1",
    ]
    frames: list[np.ndarray] = []
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        try:
            while (data := _read_exact(proc.stdout, width * height * 3)) is not None:
                frames.append(np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3))
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if returncode != 0 or not frames:
            said = read_tail(stderr)
            print(said, file=sys.stderr)  # the whole story goes to the worker's log
            raise BackendError(
                ErrorCode.BAD_INPUT,
                f"cannot decode the video frames of {src} ({ffmpeg_reason(said)}; ffmpeg exit status "
                f"{returncode} after {len(frames)} frames)",
                BAD_INPUT_HINT,
            )
    is_still = len(frames) == 1 and (container in IMAGE_DEMUXERS or container.endswith("_pipe"))
    return Visual(frames=frames, fps=None if is_still else fps, is_still=is_still)


def read_visual(path: str | os.PathLike[str], *, max_frames: int | None = None) -> Visual:
    """Read the face input: a still picture or every frame of a video, as BGR uint8.

    A file OpenCV decodes as exactly one picture is a still (grayscale becomes 3 channels, alpha is
    dropped, 16-bit is rounded to 8, EXIF orientation is applied). Anything else, animations
    included, is decoded by ffmpeg (autorotated) with its frame rate from the stream info; a lone
    frame from an image demuxer counts as a still too.

    Args:
        max_frames: stop decoding a video after this many frames.

    Raises:
        BackendError(BAD_INPUT): missing, unreadable, or neither an image nor a video.
    """
    src = _existing_input(path)
    still = _read_still(src)
    if still is not None:
        return Visual(frames=[still], fps=None, is_still=True)
    return _read_video(src, max_frames)


# ---------------------------------------------------------------------------------------- output


def _format_for(target: Path) -> OutputFormat:
    fmt = "png" if target.suffix.lower() == ".png" else container_for(target)
    if fmt is None:
        raise BackendError(
            ErrorCode.BAD_OPTION,
            f"cannot tell the output format from {target.name!r}",
            "name the output .mp4, .mkv or a PNG pattern such as frames/%05d.png",
        )
    return fmt


def _unwritable(message: str, err: OSError | None = None) -> BackendError:
    detail = f": {err.strerror}" if err is not None and err.strerror else ""
    return BackendError(
        ErrorCode.OUTPUT_UNWRITABLE, message + detail, "choose an existing folder you can write to"
    )


def _exists(path: Path) -> BackendError:
    return BackendError(
        ErrorCode.OUTPUT_EXISTS, f"output already exists: {path}", "pass --overwrite or choose another name"
    )


class VideoWriter:
    """Encode BGR frames plus a speech track with one ffmpeg process, written atomically.

    Formats: ``mp4`` (H.264 yuv420p, crf 18, +faststart, AAC), ``mkv`` (same codecs), ``png`` (a frame
    pattern such as ``frames/%05d.png`` or a folder, no audio). A file target is written under a
    hidden temp name in its folder and renamed into place only when ffmpeg succeeds; PNG frames go to
    a temp folder and are moved in at the end. An int target is an open file descriptor to stream
    into (fragmented mp4 or matroska, e.g. for ``-o -``); a stream cannot be atomic.

    yuv420p needs even sizes, so odd-sized frames are padded by one black row/column (right,
    bottom). The audio is the whole input track, re-encoded to AAC and never cut: the caller writes
    enough frames to cover it. ffmpeg's stdout is never this process's fd 1.

    Use as a context manager: leaving the block normally finishes the file; leaving it with any
    exception, KeyboardInterrupt included, kills ffmpeg and removes every temp file.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | int,
        *,
        fps: float,
        audio: str | os.PathLike[str] | None = None,
        output_format: OutputFormat | None = None,
        overwrite: bool = False,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
    ) -> None:
        if not fps > 0:
            raise BackendError(ErrorCode.BAD_OPTION, f"output frame rate must be positive, got {fps}")
        self.fps = Fraction(fps).limit_denominator(FPS_MAX_DENOMINATOR)
        self.audio = Path(audio) if audio is not None else None
        if self.audio is not None and not self.audio.is_file():
            raise BackendError(ErrorCode.BAD_AUDIO, f"audio file not found: {self.audio}")
        self.overwrite = overwrite
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self.fd = target if isinstance(target, int) else None
        self.path = None if isinstance(target, int) else Path(target)
        self.format: OutputFormat = output_format or ("mp4" if self.path is None else _format_for(self.path))
        if self.format == "png" and self.fd is not None:
            raise BackendError(
                ErrorCode.BAD_OPTION, "PNG frames cannot be streamed; give a folder or pattern"
            )
        self._size: tuple[int, int] | None = None  # (width, height), fixed by the first frame
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._temp: Path | None = None  # temp file (mp4/mkv) or temp folder (png)
        self._frame_dir: Path | None = None  # png: where the frames finally go
        self._frame_name = PNG_FRAME_NAME  # png: printf pattern of the frame files
        self._created_dir = False  # png: the whole temp folder becomes the output folder
        self._done = False
        if self.path is not None:
            self._reserve()

    # -- set-up

    def _reserve(self) -> None:
        """Check the destination and claim a temp name next to it (fails early, before any work)."""
        assert self.path is not None
        token = secrets.token_hex(4)
        if self.format == "png":
            self._reserve_frames(token)
            return
        dest, folder = self.path, self.path.parent
        if dest.is_dir():
            raise _unwritable(f"output path is a folder: {dest}")
        if dest.exists() and not self.overwrite:
            raise _exists(dest)
        if not folder.is_dir():
            raise _unwritable(f"output folder does not exist: {folder}")
        temp = partial_path(dest, token)
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies, not 0600
        except OSError as err:
            raise _unwritable(f"cannot write in {folder}", err) from err
        self._temp = temp

    def _reserve_frames(self, token: str) -> None:
        assert self.path is not None
        if "%" in self.path.name:
            folder, self._frame_name = self.path.parent, self.path.name
            if not folder.is_dir():
                raise _unwritable(f"output folder does not exist: {folder}")
        elif self.path.suffix.lower() == ".png":
            raise BackendError(
                ErrorCode.BAD_OPTION,
                f"a PNG output needs a frame pattern or a folder, got {self.path.name!r}",
                f"use e.g. {self.path.with_name(self.path.stem + '_' + PNG_FRAME_NAME)}",
            )
        else:
            folder = self.path
        try:
            first = self._frame_name % 1
        except (TypeError, ValueError) as err:
            raise BackendError(
                ErrorCode.BAD_OPTION, f"bad frame pattern {self._frame_name!r}", "use e.g. %05d.png"
            ) from err
        if folder.exists() and not folder.is_dir():
            raise _unwritable(f"output path is not a folder: {folder}")
        if (folder / first).exists() and not self.overwrite:
            raise _exists(folder / first)
        self._created_dir = not folder.exists()
        parent = folder.parent if self._created_dir else folder
        if not parent.is_dir():
            raise _unwritable(f"output folder does not exist: {parent}")
        temp = partial_path(folder if self._created_dir else folder / "frames", token)
        try:
            temp.mkdir()
        except OSError as err:
            raise _unwritable(f"cannot write in {parent}", err) from err
        self._frame_dir, self._temp = folder, temp

    def _argv(self, width: int, height: int) -> list[str]:
        """One ffmpeg command: raw BGR frames on stdin (input 0), the speech file (input 1)."""
        audio = self.audio is not None and self.format != "png"
        argv = [
            *base_argv(),
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{width}x{height}",
            "-framerate",
            f"{self.fps.numerator}/{self.fps.denominator}",
            "-i",
            "pipe:0",
            *(["-i", file_arg(self.audio)] if audio and self.audio is not None else []),
            "-map",
            "0:v:0",
            *(["-map", "1:a:0"] if audio else []),
            "-sws_flags",
            SWS_FLAGS,
        ]
        if self.format == "png":
            assert self._temp is not None
            return [*argv, "-c:v", "png", "-f", "image2", file_arg(self._temp / self._frame_name)]
        pad = ["pad=ceil(iw/2)*2:ceil(ih/2)*2"] if width % 2 or height % 2 else []  # yuv420p needs even
        argv += [
            "-vf",
            ",".join([*pad, "scale=out_color_matrix=bt709:out_range=tv", "format=yuv420p"]),
            "-c:v",
            "libx264",
            "-preset",
            self.preset,
            "-crf",
            str(self.crf),
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-color_range",
            "tv",
            *(["-c:a", "aac", "-b:a", AUDIO_BITRATE] if audio else []),
        ]
        if self.format == "mkv":
            argv += ["-f", "matroska"]
        elif self.fd is not None:  # a pipe cannot seek back to write the index: fragment instead
            argv += ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"]
        else:
            argv += ["-movflags", "+faststart", "-f", "mp4"]
        if self.fd is not None:
            return [*argv, "pipe:1"]
        assert self._temp is not None
        return [*argv, file_arg(self._temp)]

    def _start(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as ffmpeg; closed in _release
        self._proc = subprocess.Popen(
            self._argv(width, height),
            stdin=subprocess.PIPE,
            stdout=self.fd if self.fd is not None else subprocess.DEVNULL,
            stderr=self._stderr,
        )

    # -- writing

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame; every frame must have the first frame's size."""
        if self._done:
            raise RuntimeError("the writer is already closed")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        height, width = frame.shape[:2]
        if self._proc is None:
            self._start(width, height)
        elif (width, height) != self._size:
            raise ValueError(f"frame size {width}x{height} differs from the first frame's {self._size}")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, ValueError, OSError) as err:
            raise self._encode_failed("ffmpeg stopped reading frames") from err
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        """`write` each frame in turn."""
        for frame in frames:
            self.write(frame)

    def _encode_failed(self, what: str) -> BackendError:
        """Stop ffmpeg, clean up, and describe the failure with ffmpeg's stderr tail."""
        status = self._proc.poll() if self._proc is not None else None
        if self._proc is not None and status is None:
            self._proc.kill()
            status = self._proc.wait()
        said = read_tail(self._stderr) if self._stderr is not None else ""
        self.abort()
        return BackendError(
            ErrorCode.ENCODE_FAILED,
            f"{what} (ffmpeg exit status {status}) while writing {self.describe()}:\n{said}",
            "check free disk space; the log has ffmpeg's full message",
        )

    def describe(self) -> str:
        """The destination, for messages."""
        return f"file descriptor {self.fd}" if self.path is None else str(self.path)

    # -- finishing

    def close(self) -> Path | None:
        """Finish encoding and move the result into place; returns the output path (None for a stream).

        Raises:
            BackendError(ENCODE_FAILED): no frames were written, or ffmpeg failed.
            BackendError(OUTPUT_EXISTS): the output appeared meanwhile and overwrite is off.
        """
        if self._done:
            return self.path
        try:
            if self._proc is None:
                raise BackendError(ErrorCode.ENCODE_FAILED, f"no frames were written to {self.describe()}")
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
            except OSError as err:
                raise self._encode_failed("ffmpeg stopped reading frames") from err
            if self._proc.wait() != 0:
                raise self._encode_failed("ffmpeg failed")
            self._publish()
        except BaseException:
            self.abort()  # also on KeyboardInterrupt while ffmpeg finishes
            raise
        self._release()
        return self.path

    def _publish(self) -> None:
        """Move the finished temp file or frames to the requested name."""
        if self.path is None:
            return
        assert self._temp is not None
        if self.format != "png":
            if self.path.exists() and not self.overwrite:
                raise _exists(self.path)
            os.replace(self._temp, self.path)
            return
        assert self._frame_dir is not None
        if self._created_dir and not self._frame_dir.exists():
            os.rename(self._temp, self._frame_dir)
            return
        names = sorted(os.listdir(self._temp))
        if not self.overwrite and (clash := next((n for n in names if (self._frame_dir / n).exists()), None)):
            raise _exists(self._frame_dir / clash)
        for name in names:
            os.replace(self._temp / name, self._frame_dir / name)
        self._temp.rmdir()

    def _release(self) -> None:
        self._done = True
        self._temp = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def abort(self) -> None:
        """Kill ffmpeg and remove every temp file; the requested output is left untouched."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):  # the pipe is already broken; nothing waits on it
                self._proc.stdin.close()
        if self._temp is not None:
            if self._temp.is_dir():
                shutil.rmtree(self._temp, ignore_errors=True)
            else:
                self._temp.unlink(missing_ok=True)
        self._release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
