"""SyncNet's audio features: the MFCCs of python_speech_features 0.6 ``mfcc()`` with its default settings.

syncnet_python calls ``python_speech_features.mfcc(audio, 16000)`` on 16-bit PCM values (not scaled to
[-1, 1]). The library is a few lines of numpy and scipy last released in 2017; this module computes the
same numbers in float64 with numpy alone (the DCT as a small matrix), in one vectorised pass, and is
checked against the library's output in the parity tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np

__all__ = ["MFCC_PER_FRAME", "NUM_CEPSTRA", "SAMPLES_PER_FRAME", "SAMPLE_RATE", "mfcc"]

SAMPLE_RATE: Final = 16_000
FRAME_LEN: Final = 400  # 25 ms analysis window (no window function: rectangular)
FRAME_STEP: Final = 160  # 10 ms hop: 100 MFCC frames per second
N_FFT: Final = 512
NUM_FILTERS: Final = 26
NUM_CEPSTRA: Final = 13
PREEMPHASIS: Final = 0.97
CEP_LIFTER: Final = 22
VIDEO_FPS: Final = 25
SAMPLES_PER_FRAME: Final = SAMPLE_RATE // VIDEO_FPS  # 640 samples per video frame
MFCC_PER_FRAME: Final = SAMPLES_PER_FRAME // FRAME_STEP  # 4 MFCC steps per video frame
FLOOR: Final = np.finfo(float).eps  # replaces exact zeros before the logs, as the library does


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (mel / 2595.0) - 1)


@lru_cache(maxsize=1)
def filterbank() -> np.ndarray:
    """(26, 257) triangular mel filters on FFT bins floored from the mel points, 0 Hz to Nyquist."""
    mels = np.linspace(_hz_to_mel(np.float64(0)), _hz_to_mel(np.float64(SAMPLE_RATE / 2)), NUM_FILTERS + 2)
    bins = np.floor((N_FFT + 1) * _mel_to_hz(mels) / SAMPLE_RATE)
    fbank = np.zeros((NUM_FILTERS, N_FFT // 2 + 1))
    index = np.arange(N_FFT // 2 + 1, dtype=np.float64)
    for j, (lo, mid, hi) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:], strict=True)):
        rising = (index >= lo) & (index < mid)
        falling = (index >= mid) & (index < hi)
        fbank[j, rising] = (index[rising] - lo) / (mid - lo)
        fbank[j, falling] = (hi - index[falling]) / (hi - mid)
    return fbank


@lru_cache(maxsize=1)
def _dct_lifter() -> np.ndarray:
    """(26, 13): orthonormal DCT-II (the first 13 rows) times the sinusoidal lifter, as one matrix."""
    n = np.arange(NUM_FILTERS)
    k = np.arange(NUM_CEPSTRA)[:, None]
    dct = np.cos(np.pi * k * (2 * n + 1) / (2 * NUM_FILTERS)) * np.sqrt(2.0 / NUM_FILTERS)
    dct[0] /= np.sqrt(2.0)
    lift = 1 + (CEP_LIFTER / 2.0) * np.sin(np.pi * np.arange(NUM_CEPSTRA) / CEP_LIFTER)
    return (dct * lift[:, None]).T


def mfcc(samples: np.ndarray) -> np.ndarray:
    """MFCCs of 16 kHz mono audio.

    Args:
        samples: (N,) 16-bit PCM values (any dtype; int16 range, not [-1, 1]).

    Returns:
        (13, T) float64, T = 1 + ceil((N - 400) / 160) (1 when N <= 400); row 0 is the log frame energy.
    """
    signal = np.asarray(samples, dtype=np.float64)
    emphasised = np.concatenate([signal[:1], signal[1:] - PREEMPHASIS * signal[:-1]])
    count = 1 if len(signal) <= FRAME_LEN else 1 + int(np.ceil((len(signal) - FRAME_LEN) / FRAME_STEP))
    padded = np.zeros((count - 1) * FRAME_STEP + FRAME_LEN)
    padded[: len(emphasised)] = emphasised[: len(padded)]
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME_LEN)[::FRAME_STEP]
    power = (1.0 / N_FFT) * np.square(np.abs(np.fft.rfft(frames, N_FFT)))
    energy = power.sum(axis=1)
    energy[energy == 0] = FLOOR
    mel = power @ filterbank().T
    mel[mel == 0] = FLOOR
    cepstra = np.log(mel) @ _dct_lifter()
    cepstra[:, 0] = np.log(energy)
    return cepstra.T
