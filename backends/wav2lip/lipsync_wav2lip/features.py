"""Wav2Lip's audio features: the normalised log-mel spectrogram and the per-frame mel windows.

Parity target: ``audio.melspectrogram`` and the mel-chunk loop of ``inference.py`` in
Rudrabha/Wav2Lip (``hparams.py`` values) under librosa 0.7.0, whose centred STFT reflect-pads.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from lipsync_kit import audio
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode

__all__ = [
    "MEL_STEP",
    "MIN_SAMPLES",
    "SAMPLE_RATE",
    "check_speech",
    "frame_windows",
    "melspectrogram",
    "num_frames_for",
    "official_chunk_starts",
    "window_range",
]

_RECIPE: Final = audio.WAV2LIP_LOG_MEL
SAMPLE_RATE: Final = _RECIPE.sample_rate  # 16000
N_FFT: Final = _RECIPE.n_fft
HOP_SIZE: Final = _RECIPE.hop
NUM_MELS: Final = _RECIPE.n_mels
FMIN: Final = _RECIPE.fmin
FMAX: Final = _RECIPE.fmax
MAX_ABS_VALUE: Final = _RECIPE.max_abs_value  # symmetric output range [-4, 4]

MEL_FRAMES_PER_SECOND: Final = SAMPLE_RATE / HOP_SIZE  # 80.0 mel columns per second of audio
MEL_STEP: Final = 16  # mel columns per video frame window (0.2 s of audio)
MIN_SAMPLES: Final = (MEL_STEP - 1) * HOP_SIZE  # 3000 samples (0.1875 s): the least audio with 16 columns
SILENCE_LEVEL: Final = -MAX_ABS_VALUE  # -4.0: the value digital silence maps to; pads the tail
FRAME_COUNT_EPS: Final = 1e-9  # keeps float noise (0.52 s * 25 fps = 13.000000000000002) from adding a frame


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio (`audio.log_mel_spectrogram`).

    The STFT is reflect-centred, as librosa 0.7.0 (Wav2Lip's pin) pads.

    Args:
        samples: (N,) float audio at 16 kHz, N > 400.

    Returns:
        (80, 1 + N // 200) float32 in [-4, 4].
    """
    return audio.log_mel_spectrogram(samples, pad_mode="reflect", recipe=_RECIPE)


def check_speech(samples: np.ndarray) -> None:
    """Raise AUDIO_TOO_SHORT below one 16-column window (3000 samples), SILENT_AUDIO for all zeros."""
    audio.check_speech(samples, sample_rate=SAMPLE_RATE, min_samples=MIN_SAMPLES, model="Wav2Lip")


def _columns_per_frame(fps: float) -> float:
    """Mel columns per video frame, computed as upstream does (float64 80.0 / fps)."""
    if not (math.isfinite(fps) and fps > 0):
        raise BackendError(ErrorCode.BAD_OPTION, f"frame rate must be a positive number, got {fps}")
    return MEL_FRAMES_PER_SECOND / float(fps)


def _frame_starts(count: int, step: float) -> np.ndarray:
    """``int(i * step)`` for i < count, in the same float64 arithmetic as the official Python loop."""
    return (np.arange(count, dtype=np.float64) * step).astype(np.int64)


def official_chunk_starts(mel_frames: int, fps: float) -> list[int]:
    """Start columns of the mel chunks that upstream ``inference.py`` feeds the model.

    Chunk i starts at ``int(i * 80.0 / fps)`` while it fits; the first that would not fit is replaced
    by the last 16 columns and ends the list, so the last start often repeats. With fewer than 16
    columns the single chunk starts at 0 and is only `mel_frames` wide (upstream then fails).
    """
    step = _columns_per_frame(fps)
    # Every start that fits has i * step < mel_frames - 15, so this many candidates always suffice.
    candidates = _frame_starts(max(0, math.ceil((mel_frames - MEL_STEP + 1) / step)) + 1, step)
    fitting = candidates[candidates + MEL_STEP <= mel_frames]
    return [*fitting.tolist(), max(0, mel_frames - MEL_STEP)]


def frame_windows(mel: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """The 16-column mel window of every output video frame.

    Frame i uses columns ``[int(i * 80 / fps), ... + 16)``, exactly the official chunk wherever upstream
    would not clamp; columns past the end of the audio read as silence (-4.0), so the video can cover
    the whole audio instead of stopping at the last full window as upstream does.

    Args:
        mel: (80, T) output of `melspectrogram`, T >= 16.
        fps: video frame rate.
        num_frames: number of output frames (see `num_frames_for`).

    Returns:
        (num_frames, 80, 16) float32, a new array.
    """
    return window_range(mel, fps, 0, num_frames)


def window_range(mel: np.ndarray, fps: float, start: int, stop: int) -> np.ndarray:
    """`frame_windows` of output frames ``start .. stop - 1`` only (a long video takes them batch by batch).

    Returns:
        (stop - start, 80, 16) float32, a new array.
    """
    if mel.shape[1] < MEL_STEP:
        raise BackendError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"the audio gives {mel.shape[1]} mel frames; Wav2Lip needs at least {MEL_STEP} "
            f"({MIN_SAMPLES / SAMPLE_RATE:.4f} s of audio)",
            "use a longer speech clip",
        )
    # int(i * step) elementwise: the same float64 arithmetic as `_frame_starts` over the whole range.
    starts = (np.arange(start, stop, dtype=np.float64) * _columns_per_frame(fps)).astype(np.int64)
    needed = int(starts[-1]) + MEL_STEP if len(starts) else 0
    padded = mel.astype(np.float32, copy=False)
    if needed > mel.shape[1]:
        tail = np.full((mel.shape[0], needed - mel.shape[1]), SILENCE_LEVEL, dtype=np.float32)
        padded = np.concatenate([padded, tail], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, MEL_STEP, axis=1)  # (80, T', 16) view
    return np.ascontiguousarray(windows[:, starts].transpose(1, 0, 2))


def num_frames_for(duration_s: float, fps: float) -> int:
    """Video frames needed to cover `duration_s` seconds of audio at `fps`."""
    return max(0, math.ceil(duration_s * fps - FRAME_COUNT_EPS))
