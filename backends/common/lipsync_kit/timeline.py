"""Which source frame each output frame shows, when the speech and the portrait video differ in length.

``--duration-mode``:

- ``loop``: start the video again from its first frame (official Wav2Lip: ``frames[i % len(frames)]``);
- ``pingpong``: play it forwards, then backwards, then forwards … (official MuseTalk: ``frames +
  frames[::-1]``, so both end frames show twice in a row);
- ``freeze``: hold the last frame until the speech ends;
- ``cut``: stop at the shorter of the two (the speech is cut when the video is shorter).

Every mode but ``cut`` makes the output as long as the speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .options import DURATION_MODES

__all__ = ["DURATION_MODES", "DurationMode", "Timeline"]

DurationMode = Literal["loop", "pingpong", "freeze", "cut"]


@dataclass(frozen=True)
class Timeline:
    """The output frames of one render and the source frame behind each.

    Args:
        mode: one of `DURATION_MODES`.
        source_frames: frames of the portrait that are used (a still has 1).
        speech_frames: frames needed to cover the speech at the output rate.
    """

    mode: DurationMode
    source_frames: int
    speech_frames: int

    def __post_init__(self) -> None:
        if self.mode not in DURATION_MODES:
            raise ValueError(f"duration mode must be one of {', '.join(DURATION_MODES)}, got {self.mode!r}")
        if self.source_frames < 1 or self.speech_frames < 0:
            raise ValueError(f"bad frame counts: {self.source_frames} source, {self.speech_frames} speech")

    def __len__(self) -> int:
        """Output frames."""
        if self.mode == "cut":
            return min(self.source_frames, self.speech_frames)
        return self.speech_frames

    def source_indices(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(stop - start,) int64: the source frame of output frames ``start .. stop - 1``."""
        stop = len(self) if stop is None else min(stop, len(self))
        out = np.arange(start, max(start, stop), dtype=np.int64)
        count = self.source_frames
        match self.mode:
            case "loop":
                return out % count
            case "pingpong":
                if count == 1:
                    return np.zeros_like(out)
                phase = out % (2 * count)
                return np.where(phase < count, phase, 2 * count - 1 - phase)
            case _:  # freeze, and cut (which never runs past the end)
                return np.minimum(out, count - 1)

    def source_index(self, index: int) -> int:
        """The source frame of output frame ``index``."""
        return int(self.source_indices(index, index + 1)[0])
