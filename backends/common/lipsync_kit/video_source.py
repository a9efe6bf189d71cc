"""Streaming video decode: ffmpeg turns the portrait video into raw BGR frames on a pipe, read lazily.

The frame rate is normalised once, here: the decoder emits constant-rate frames at the source's nominal
rate (exact NTSC rationals such as 30000/1001; a variable-rate source at its average rate, frames repeated
or dropped by ffmpeg's ``fps`` filter), so that frame ``i`` of every later pass is the picture shown at
``i / fps`` and every stage can count frames instead of reading timestamps. Rotation metadata is applied
(ffmpeg autorotates) and YUV is converted with the source's own matrix and range.

A `VideoSource` is an iterator over frames fed by a reader thread through a bounded queue, so decoding
overlaps whatever consumes the frames and memory holds at most ``queue_size`` frames at any length.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import numpy as np

from ._ffmpeg import base_argv, decode_facts, file_arg, read_tail, stderr_tail
from .errors import BackendError
from .probe import ffmpeg_reason
from .protocol import ErrorCode

__all__ = [
    "BAD_INPUT_HINT",
    "DEFAULT_COLOUR",
    "FPS_MAX_DENOMINATOR",
    "IMAGE_DEMUXERS",
    "SWS_FLAGS",
    "ColourTags",
    "VideoInfo",
    "VideoSource",
    "count_frames",
    "is_image_container",
    "probe_video",
]

FPS_MAX_DENOMINATOR: Final = 10_000  # fps floats become exact rationals: 29.97002997 -> 30000/1001
IMAGE_DEMUXERS: Final = frozenset({"image2", "gif", "apng", "webp"})  # plus every "*_pipe" image demuxer

# swscale's default fast paths shift RGB <-> YUV round trips by about -2 levels; these make them unbiased.
SWS_FLAGS: Final = "bicubic+accurate_rnd+full_chroma_int"
BAD_INPUT_HINT: Final = "give an image (png, jpg, ...) or a video file that ffmpeg can decode"
DEFAULT_QUEUE_FRAMES: Final = 16  # decoded frames waiting for the consumer (16 x 6 MB at 1080p)
_END: Final = object()  # queue marker: the decoder is done


def is_image_container(container: str) -> bool:
    """Whether ffmpeg read the file with an image demuxer (a still picture, not a video)."""
    return container in IMAGE_DEMUXERS or container.endswith("_pipe")


@dataclass(frozen=True)
class ColourTags:
    """How the source's YUV maps to RGB: its matrix (``bt709``, ``smpte170m``, ``bt470bg`` …) and range.

    The writer encodes the output with the same matrix and range, so players show the dubbed video in
    the colours of the source, and a full-range phone video stays full range.
    """

    matrix: str = "bt709"
    range: str = "tv"  # "tv" (limited, 16-235) or "pc" (full, 0-255)

    @property
    def is_bt601(self) -> bool:
        return self.matrix in ("smpte170m", "bt470bg", "bt601")


DEFAULT_COLOUR: Final = ColourTags()


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder will give: frame size after rotation, the normalised rate, colour, container."""

    path: Path
    container: str
    width: int
    height: int
    fps: Fraction | None  # None when the stream states no rate (frames then pass through as decoded)
    colour: ColourTags
    duration: float | None  # seconds, as the container states it

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3

    @property
    def is_image_demuxer(self) -> bool:
        return is_image_container(self.container)


def _colour_of(stream_text: str) -> ColourTags:
    """Matrix and range from a stream line: ``yuvj420p(pc, smpte170m/unknown/unknown, progressive)``."""
    found = re.search(r", (?P<pix>[a-z0-9_]+)(?:\((?P<props>[^)]*)\))?[,\s]", stream_text)
    if found is None or not found["pix"].startswith(("yuv", "nv")):
        return DEFAULT_COLOUR  # RGB, grayscale, palette: encoded as the usual bt709 limited range
    props = found["props"] or ""
    tokens = [token.strip() for token in props.split(",")]
    colour_range = "pc" if "pc" in tokens or "jpeg" in tokens else "tv"
    if not any(token in ("pc", "tv") for token in tokens) and found["pix"].startswith("yuvj"):
        colour_range = "pc"  # the deprecated yuvj formats are full range by definition
    matrix = next(
        (t.split("/")[0] for t in tokens if t.split("/")[0] in ("bt709", "smpte170m", "bt470bg")), "bt709"
    )
    return ColourTags(matrix=matrix, range=colour_range)


def probe_video(src: Path) -> VideoInfo:
    """Size (after autorotation), normalised rate and colour of the first video stream, by decoding a frame.

    Raises:
        BackendError(BAD_INPUT): no video stream, undecodable, or a text file.
    """
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
    line = next((ln for ln in facts.stderr.splitlines() if "Video:" in ln and "Stream #0:" in ln), "")
    fps = Fraction(facts.fps).limit_denominator(FPS_MAX_DENOMINATOR) if facts.fps else None
    return VideoInfo(
        path=src,
        container=facts.container,
        width=facts.size[0],
        height=facts.size[1],
        fps=fps,
        colour=_colour_of(line.split("Video:", 1)[-1]),
        duration=facts.input.duration,
    )


def _decode_argv(info: VideoInfo, start: int, max_frames: int | None, output: list[str]) -> list[str]:
    """ffmpeg decoding the first video stream from frame ``start`` at the normalised rate into ``output``."""
    # Seeking on the input side is accurate (ffmpeg decodes from the keyframe before and drops the
    # frames before the seek point); half a frame early, so rounding can never drop the start frame.
    seek = ["-ss", f"{float((start - 0.5) / info.fps):.9f}"] if start and info.fps else []
    # The fps filter holds each frame until the next slot of the constant rate: a constant-rate
    # source passes unchanged, a variable-rate one gets frames repeated or dropped (``-fps_mode cfr``
    # miscounts the end of such a stream).
    rate = f"fps={info.fps.numerator}/{info.fps.denominator}," if info.fps else ""
    return [
        *base_argv(),
        *seek,
        "-i",
        file_arg(info.path),
        "-map",
        "0:v:0",
        "-sws_flags",
        SWS_FLAGS,
        "-fps_mode",
        "passthrough",
        "-vf",
        # The first frame is frame 0 even when the stream starts late (B-frame delay, a fragmented
        # mp4); a stream that changes size mid-way still yields frames of one size.
        f"setpts=PTS-STARTPTS,{rate}scale={info.width}:{info.height}",
        *(["-frames:v", str(max_frames)] if max_frames is not None else []),
        *output,
        "pipe:1",
    ]


def count_frames(info: VideoInfo, max_frames: int | None = None) -> int:
    """How many frames `VideoSource` gives for this video (up to ``max_frames``), without converting them.

    Raises:
        BackendError(BAD_INPUT): ffmpeg fails or no frame decodes.
    """
    argv = _decode_argv(info, 0, max_frames, ["-f", "framecrc"])
    argv[argv.index("-vf") + 1] = argv[argv.index("-vf") + 1].rsplit(",scale=", 1)[0]  # sizes do not count
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    count = sum(1 for line in proc.stdout.splitlines() if line and not line.startswith(b"#"))
    if proc.returncode != 0 or count == 0:
        said = stderr_tail(proc.stderr)
        print(said, file=sys.stderr)
        raise BackendError(
            ErrorCode.BAD_INPUT,
            f"cannot decode the video frames of {info.path} ({ffmpeg_reason(said)})",
            BAD_INPUT_HINT,
        )
    return count


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


class VideoSource:
    """The frames of a video from `start` on, as (H, W, 3) uint8 BGR arrays, decoded in a reader thread.

    Iterate it (frames arrive in order, at the normalised rate of `info`); ``index`` is the source index
    of the next frame. Use as a context manager, or call `close`: it stops ffmpeg and the thread.

    Args:
        info: from `probe_video`.
        start: first frame to give (0-based, in normalised frames); decoding seeks there accurately.
        max_frames: stop after this many frames.
        queue_size: decoded frames that may wait for the consumer.
    """

    def __init__(
        self,
        info: VideoInfo,
        *,
        start: int = 0,
        max_frames: int | None = None,
        queue_size: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        self.info = info
        self.index = start
        self.frames_read = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            self._argv(start, max_frames),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._thread = threading.Thread(target=self._pump, name="video-decode", daemon=True)
        self._thread.start()

    def _argv(self, start: int, max_frames: int | None) -> list[str]:
        output = ["-f", "rawvideo", "-pix_fmt", "bgr24"]
        return _decode_argv(self.info, start, max_frames, output)

    def _put(self, item: object) -> bool:
        """Queue an item unless the consumer has closed the source meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        shape = (self.info.height, self.info.width, 3)
        try:
            while (data := _read_exact(stdout, self.info.frame_bytes)) is not None:
                if not self._put(np.frombuffer(data, dtype=np.uint8).reshape(shape)):
                    return
            self._put(_END)
        except BaseException as err:
            self._put(err)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # iterating again stays at the end
            self._check_exit()
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        self.index += 1
        self.frames_read += 1
        return item  # type: ignore[return-value]

    def _check_exit(self) -> None:
        returncode = self._proc.wait()
        if returncode != 0 or (self.frames_read == 0 and self.index == 0):
            said = read_tail(self._stderr)
            print(said, file=sys.stderr)  # the whole story goes to the worker's log
            raise BackendError(
                ErrorCode.BAD_INPUT,
                f"cannot decode the video frames of {self.info.path} ({ffmpeg_reason(said)}; ffmpeg exit "
                f"status {returncode} after {self.frames_read} frames)",
                BAD_INPUT_HINT,
            )

    def close(self) -> None:
        """Stop ffmpeg and the reader thread; safe to call twice."""
        self._stop.set()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._thread.join()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
