"""Source frames in any order a `~lipsync_kit.timeline.Timeline` asks for, decoded on demand.

Forward runs read straight on from one decoder; a jump back to the start reopens it (``loop``); a
backward run (``pingpong``) decodes a chunk before the wanted frame once and serves it from the end;
a repeated index (``freeze``) reuses the frame held. Memory holds one decoder queue plus at most one
chunk, whatever the length of the video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import numpy as np

from .video_source import VideoInfo, VideoSource

__all__ = ["FrameCursor"]

CHUNK_BYTES: Final = 256 * 1024 * 1024  # frames decoded at once for a backward run (about 40 at 1080p)
MAX_CHUNK_FRAMES: Final = 64
FORWARD_SKIP_MAX: Final = 64  # a gap forward up to this is read through; beyond, the decoder seeks


class FrameCursor:
    """Frame ``i`` of a video for a sequence of indices; use as a context manager.

    Args:
        info: the video, from `~lipsync_kit.video_source.probe_video`.
        queue_size: decoded frames that may wait in the decoder's queue.
    """

    def __init__(self, info: VideoInfo, *, queue_size: int = 8) -> None:
        self.info = info
        self.queue_size = queue_size
        self.chunk_frames = max(1, min(MAX_CHUNK_FRAMES, CHUNK_BYTES // info.frame_bytes))
        self._source: VideoSource | None = None
        self._held: dict[int, np.ndarray] = {}  # the last chunk (backward runs) or the last frame
        self._last = -1
        self.decoders_opened = 0

    def _open(self, start: int) -> VideoSource:
        if self._source is not None:
            self._source.close()
        self._source = VideoSource(self.info, start=start, queue_size=self.queue_size)
        self.decoders_opened += 1
        return self._source

    def _read_to(self, index: int) -> np.ndarray:
        """Read forward from the open decoder (opening one at ``index`` when needed) up to ``index``."""
        source = self._source
        if source is None or not source.index <= index <= source.index + FORWARD_SKIP_MAX:
            source = self._open(index)
        frame = None
        while source.index <= index:
            frame = next(source, None)
            if frame is None:
                raise IndexError(f"frame {index} is past the end of {self.info.path}")
        assert frame is not None
        return frame

    def _load_chunk_ending_at(self, index: int) -> None:
        start = max(0, index - self.chunk_frames + 1)
        source = self._open(start)
        self._held = {start + i: frame for i, frame in zip(range(index - start + 1), source, strict=False)}
        source.close()
        self._source = None

    def get(self, index: int) -> np.ndarray:
        """Source frame ``index`` (0-based, at the normalised rate)."""
        if index in self._held:
            frame = self._held[index]
        elif 0 < index < self._last:  # going backwards: decode the chunk that ends here once
            self._load_chunk_ending_at(index)
            frame = self._held[index]
        else:
            frame = self._read_to(index)
            self._held = {index: frame}
        self._last = index
        return frame

    def frames(self, indices: Iterable[int]) -> Iterator[np.ndarray]:
        """`get` each index in turn."""
        for index in indices:
            yield self.get(int(index))

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        self._held = {}

    def __enter__(self) -> FrameCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
