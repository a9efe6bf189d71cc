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
]

SAMPLE_RATE: Final = 16000
N_FFT: Final = 800
HOP_SIZE: Final = 200
WIN_SIZE: Final = 800
NUM_MELS: Final = 80
FMIN: Final = 55.0
FMAX: Final = 7600.0
PREEMPHASIS: Final = 0.97
REF_LEVEL_DB: Final = 20.0
MIN_LEVEL_DB: Final = -100.0
MAX_ABS_VALUE: Final = 4.0  # symmetric output range [-4, 4]

MIN_AMPLITUDE: Final = 10.0 ** (MIN_LEVEL_DB / 20.0)  # 1e-5: magnitude floor before the log
MEL_FRAMES_PER_SECOND: Final = SAMPLE_RATE / HOP_SIZE  # 80.0 mel columns per second of audio
MEL_STEP: Final = 16  # mel columns per video frame window (0.2 s of audio)
MIN_SAMPLES: Final = (MEL_STEP - 1) * HOP_SIZE  # 3000 samples (0.1875 s): the least audio with 16 columns
SILENCE_LEVEL: Final = -MAX_ABS_VALUE  # -4.0: the value digital silence maps to; pads the tail
FRAME_COUNT_EPS: Final = 1e-9  # keeps float noise (0.52 s * 25 fps = 13.000000000000002) from adding a frame


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio.

    Pre-emphasis 0.97 (first sample kept), |STFT| (n_fft 800, hop 200, Hann 800, reflect-centred),
    80 Slaney mels over 55-7600 Hz, 20 log10(max(1e-5, m)) - 20 dB, then scaled from [-100, 0] dB
    to [-4, 4] and clipped.

    Args:
        samples: (N,) float audio at 16 kHz, N > 400.

    Returns:
        (80, 1 + N // 200) float32 in [-4, 4].
    """
    y = np.asarray(samples, dtype=np.float64)
    emphasised = np.empty_like(y)
    emphasised[:1] = y[:1]
    emphasised[1:] = y[1:] - PREEMPHASIS * y[:-1]
    magnitude = audio.stft_magnitude(emphasised, N_FFT, HOP_SIZE, WIN_SIZE)
    mel = audio.mel_filterbank(SAMPLE_RATE, N_FFT, NUM_MELS, FMIN, FMAX) @ magnitude
    db = 20.0 * np.log10(np.maximum(MIN_AMPLITUDE, mel)) - REF_LEVEL_DB
    scaled = 2 * MAX_ABS_VALUE * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


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
    if mel.shape[1] < MEL_STEP:
        raise BackendError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"the audio gives {mel.shape[1]} mel frames; Wav2Lip needs at least {MEL_STEP} "
            f"({MIN_SAMPLES / SAMPLE_RATE:.4f} s of audio)",
            "use a longer speech clip",
        )
    starts = _frame_starts(num_frames, _columns_per_frame(fps))
    needed = int(starts[-1]) + MEL_STEP if num_frames else 0
    padded = mel.astype(np.float32, copy=False)
    if needed > mel.shape[1]:
        tail = np.full((mel.shape[0], needed - mel.shape[1]), SILENCE_LEVEL, dtype=np.float32)
        padded = np.concatenate([padded, tail], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, MEL_STEP, axis=1)  # (80, T', 16) view
    return np.ascontiguousarray(windows[:, starts].transpose(1, 0, 2))


def num_frames_for(duration_s: float, fps: float) -> int:
    """Video frames needed to cover `duration_s` seconds of audio at `fps`."""
    return max(0, math.ceil(duration_s * fps - FRAME_COUNT_EPS))
