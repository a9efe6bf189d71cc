"""SadTalker's audio features: frame count, per-frame mel windows, and the random eye-blink track.

Parity target: ``get_data`` in ``src/generate_batch.py`` of github.com/OpenTalker/SadTalker
(``cd4c046``) with its ``src/utils/audio.py`` (Wav2Lip's mel recipe) under librosa >= 0.9, whose
centred STFT pads with zeros. The video runs at 25 fps: 640 samples and 3.2 mel columns per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from lipsync_kit import audio

__all__ = [
    "BLINK_PATTERN",
    "FPS",
    "MEL_STEP",
    "SAMPLES_PER_FRAME",
    "SAMPLE_RATE",
    "blink_ratio",
    "check_speech",
    "frame_count",
    "frame_windows",
    "mel_windows",
    "melspectrogram",
    "place_blinks",
    "trim_to_frames",
    "window_starts",
]

SAMPLE_RATE: Final = audio.WAV2LIP_LOG_MEL.sample_rate  # 16000
FPS: Final = 25
SAMPLES_PER_FRAME: Final = SAMPLE_RATE // FPS  # 640
MEL_COLUMNS_PER_SECOND: Final = SAMPLE_RATE / audio.WAV2LIP_LOG_MEL.hop  # 80.0
MEL_STEP: Final = 16  # mel columns per video frame window (0.2 s)
WINDOW_LEAD_FRAMES: Final = 2  # a window starts 2 video frames before its frame: ~centred on it

BLINK_PATTERN: Final = np.array([0.5, 0.9, 1.0, 0.9, 0.5], dtype=np.float32)  # eye closure per frame
MAX_FRAMES_WITHOUT_BLINKS: Final = 20  # sequences this short get no blinks
MIN_BLINK_GAP: Final = 10  # frames from the end of one blink (or the start) to the next blink
MAX_BLINK_GAP: Final = 70  # exclusive bound; also at most half the sequence

GapPicker = Callable[[int, int], int]  # (low, high) -> an integer in [low, high)


def frame_count(num_samples: int) -> int:
    """Video frames for `num_samples` samples at 16 kHz: whole 640-sample frames (the rest is dropped)."""
    return num_samples // SAMPLES_PER_FRAME


def trim_to_frames(samples: np.ndarray) -> np.ndarray:
    """The first ``frame_count(len(samples)) * 640`` samples (a view), as upstream cuts the waveform."""
    return samples[: frame_count(len(samples)) * SAMPLES_PER_FRAME]


def check_speech(samples: np.ndarray) -> None:
    """Raise AUDIO_TOO_SHORT below one video frame (640 samples), SILENT_AUDIO for all zeros."""
    audio.check_speech(samples, sample_rate=SAMPLE_RATE, min_samples=SAMPLES_PER_FRAME, model="SadTalker")


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """SadTalker's normalised log-mel spectrogram: Wav2Lip's recipe with a zero-padded centred STFT.

    Args:
        samples: (N,) float audio at 16 kHz, N >= 1.

    Returns:
        (80, 1 + N // 200) float32 in [-4, 4].
    """
    return audio.log_mel_spectrogram(samples, pad_mode="constant")


def window_starts(num_frames: int) -> np.ndarray:
    """First mel column of each frame's window: ``int(80 * ((i - 2) / 25))``, truncated toward zero.

    Evaluated in float64 in upstream's order, so frame 0 starts at -6 and frame 1 at -3 (not -4).

    Returns:
        (num_frames,) int64; may be negative or run past the end (`frame_windows` clamps).
    """
    seconds = (np.arange(num_frames, dtype=np.float64) - WINDOW_LEAD_FRAMES) / FPS
    return np.trunc(MEL_COLUMNS_PER_SECOND * seconds).astype(np.int64)


def frame_windows(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """The 16-column mel window of every video frame, column indices clamped into the spectrogram.

    Args:
        mel: (80, M) output of `melspectrogram`, M >= 1.
        num_frames: video frames (see `frame_count`).

    Returns:
        (num_frames, 80, 16) float32, a new array.
    """
    if mel.ndim != 2 or mel.shape[1] == 0:
        raise ValueError(f"need a (mels, columns) spectrogram with columns, got shape {mel.shape}")
    columns = window_starts(num_frames)[:, None] + np.arange(MEL_STEP)
    np.clip(columns, 0, mel.shape[1] - 1, out=columns)
    return np.ascontiguousarray(mel.astype(np.float32, copy=False)[:, columns].transpose(1, 0, 2))


def mel_windows(samples: np.ndarray) -> np.ndarray:
    """Per-frame mel windows of 16 kHz speech, exactly as upstream feeds Audio2Exp and Audio2Pose.

    The waveform is cut to whole frames first, so the spectrogram covers only those samples.

    Args:
        samples: (N,) float audio at 16 kHz, N >= 640 (see `check_speech`).

    Returns:
        (N // 640, 80, 16) float32.
    """
    trimmed = trim_to_frames(np.asarray(samples))
    if trimmed.size == 0:
        raise ValueError(f"need at least {SAMPLES_PER_FRAME} samples (one video frame), got {len(samples)}")
    return frame_windows(melspectrogram(trimmed), frame_count(len(trimmed)))


def place_blinks(num_frames: int, pick_gap: GapPicker) -> np.ndarray:
    """Upstream's random blink track with the randomness supplied by `pick_gap`.

    Starting at frame 0, repeatedly skip ``pick_gap(10, min(T // 2, 70))`` frames and put the 5-frame
    `BLINK_PATTERN` there, while the blink ends before the last frame; the next gap counts from the
    blink's end. No blinks when T <= 20. Where upstream's gap range is empty (T = 21, where it raises),
    there are no blinks either.

    Returns:
        (num_frames,) float32 eye-closure ratio in [0, 1].
    """
    ratio = np.zeros(num_frames, dtype=np.float32)
    low, high = min(MIN_BLINK_GAP, num_frames), min(num_frames // 2, MAX_BLINK_GAP)
    if num_frames <= MAX_FRAMES_WITHOUT_BLINKS or high <= low:
        return ratio
    frame = 0
    while True:
        start = frame + pick_gap(low, high)
        end = start + len(BLINK_PATTERN)
        if end > num_frames - 1:
            return ratio
        ratio[start:end] = BLINK_PATTERN
        frame = end


def blink_ratio(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random blink track (see `place_blinks`) drawn from `rng`: the same seed gives the same track.

    Upstream draws from Python's unseeded `random`; this follows the same rules, not the same draws.

    Returns:
        (num_frames,) float32.
    """
    return place_blinks(num_frames, lambda low, high: int(rng.integers(low, high)))
