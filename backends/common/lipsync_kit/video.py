"""Pictures in and video out: open a still or a video (streamed by `video_source.VideoSource`), and
write frames plus the speech track through one ffmpeg process, atomically.

Whether an input is a still or a video is decided by decoding it, never by its extension.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal

import cv2
import numpy as np

from ._ffmpeg import base_argv, file_arg, read_tail
from .errors import BackendError
from .files import container_for, partial_path
from .protocol import ErrorCode
from .video_source import (
    BAD_INPUT_HINT,
    DEFAULT_COLOUR,
    FPS_MAX_DENOMINATOR,
    SWS_FLAGS,
    ColourTags,
    VideoInfo,
    VideoSource,
    probe_video,
)

__all__ = [
    "ColourTags",
    "OutputFormat",
    "Portrait",
    "VideoWriter",
    "Visual",
    "open_portrait",
    "read_visual",
]

OutputFormat = Literal["mp4", "mkv", "png"]

PNG_FRAME_NAME: Final = "%05d.png"  # frame files inside a folder given as a PNG output
DEFAULT_CRF: Final = 18  # x264 quality: visually lossless for talking heads
DEFAULT_PRESET: Final = "veryfast"  # encoding must never be the slow stage next to the model
AUDIO_BITRATE: Final = "128k"


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


def _still_or_video(src: Path) -> tuple[np.ndarray | None, VideoInfo | None]:
    """(the picture, None) for a still, (None, info) for a video; see `open_portrait`."""
    still = _read_still(src)
    if still is not None:
        return still, None
    info = probe_video(src)
    if info.is_image_demuxer:  # one frame from an image demuxer is a still; an animation is a video
        with VideoSource(info, max_frames=2) as source:
            first = list(source)
        if len(first) == 1:
            return first[0], None
    return None, info


@dataclass(frozen=True)
class Portrait:
    """The face input opened for streaming: a still picture, or a video to decode with `VideoSource`."""

    still: np.ndarray | None  # (H, W, 3) uint8 BGR for a still
    video: VideoInfo | None  # for a video

    @property
    def is_still(self) -> bool:
        return self.still is not None


def open_portrait(path: str | os.PathLike[str]) -> Portrait:
    """Decide whether the face input is a still or a video (by decoding), without reading a video's frames.

    Raises:
        BackendError(BAD_INPUT): missing, unreadable, or neither an image nor a video.
    """
    still, video = _still_or_video(_existing_input(path))
    return Portrait(still=still, video=video)


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
    still, info = _still_or_video(_existing_input(path))
    if still is not None:
        return Visual(frames=[still], fps=None, is_still=True)
    assert info is not None
    with VideoSource(info, max_frames=max_frames) as source:
        frames = list(source)
    return Visual(frames=frames, fps=float(info.fps) if info.fps else None, is_still=False)


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
        colour: ColourTags = DEFAULT_COLOUR,
        max_seconds: float | None = None,
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
        self.colour = colour
        self.max_seconds = max_seconds  # cut the audio here (``--duration-mode cut``); None: whole track
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
        colour = self.colour  # the source's matrix and range: players show the source's colours
        matrix = "bt601" if colour.is_bt601 else "bt709"
        argv += [
            "-vf",
            ",".join([*pad, f"scale=out_color_matrix={matrix}:out_range={colour.range}", "format=yuv420p"]),
            "-c:v",
            "libx264",
            "-preset",
            self.preset,
            "-crf",
            str(self.crf),
            "-colorspace",
            colour.matrix,
            "-color_primaries",
            colour.matrix,
            "-color_trc",
            "smpte170m" if colour.is_bt601 else "bt709",
            "-color_range",
            colour.range,
            *(["-c:a", "aac", "-b:a", AUDIO_BITRATE] if audio else []),
            *(["-t", f"{self.max_seconds:.6f}"] if self.max_seconds is not None else []),
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
