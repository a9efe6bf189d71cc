"""Audio for every backend: decode any file ffmpeg reads, check it holds speech, and the spectral
building blocks (STFT magnitude, Slaney mel filterbank) that each backend's own features are made of.

numpy only: the filterbank and STFT follow librosa's definitions (``librosa.filters.mel`` with its
defaults, ``librosa.stft`` with ``center=True``) without depending on librosa or scipy.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Final

import numpy as np

from ._ffmpeg import base_argv, file_arg, stderr_tail
from .errors import BackendError
from .protocol import ErrorCode

__all__ = [
    "check_speech",
    "hz_to_mel",
    "load_audio",
    "mel_filterbank",
    "mel_to_hz",
    "stft_magnitude",
]

# Slaney's mel scale (Auditory Toolbox; librosa's default, htk=False): linear below 1 kHz, log above.
MEL_HZ_PER_MEL: Final = 200.0 / 3  # 66.67 Hz per mel on the linear part
MEL_LOG_START_HZ: Final = 1000.0  # where the log part starts
MEL_LOG_START_MEL: Final = MEL_LOG_START_HZ / MEL_HZ_PER_MEL  # 15.0 mels
MEL_LOG_STEP: Final = float(np.log(6.4) / 27.0)  # 0.0687: natural-log Hz per mel above 1 kHz

STFT_BLOCK_FRAMES: Final = 2048  # frames per rfft call: bounds the float64 scratch (~13 MB at n_fft 800)
BAD_AUDIO_HINT: Final = (
    "give a speech file ffmpeg can decode (wav, mp3, m4a, ogg, flac, or a video with sound)"
)


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Decode the first audio stream of any file ffmpeg reads into mono samples at `sample_rate`.

    ffmpeg resamples and downmixes; ``-rematrix_maxval 1`` makes stereo come out as (L + R) / 2, the
    channel mean, instead of ffmpeg's float default (L + R) / sqrt(2). A 16-bit PCM file already at
    `sample_rate` decodes to exactly ``int16 / 32768``.

    Returns:
        (N,) float32, nominally in [-1, 1].

    Raises:
        BackendError(BAD_AUDIO): the file is missing, is not audio, has no audio stream, or decodes to
        no samples; the message names the file and quotes ffmpeg.
    """
    src = Path(path)
    if not src.exists():
        raise BackendError(ErrorCode.BAD_AUDIO, f"audio file not found: {src}", BAD_AUDIO_HINT)
    if not src.is_file():
        raise BackendError(ErrorCode.BAD_AUDIO, f"audio path is not a file: {src}", BAD_AUDIO_HINT)
    argv = [
        *base_argv(),
        "-i",
        file_arg(src),
        "-map",
        "0:a:0",
        "-f",
        "f32le",
        "-c:a",
        "pcm_f32le",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-rematrix_maxval",
        "1.0",
        "pipe:1",
    ]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        said = stderr_tail(proc.stderr)
        if "matches no streams" in said:
            message = f"no audio stream in {src}"
        else:
            message = f"cannot decode audio from {src} (ffmpeg exit status {proc.returncode}):\n{said}"
        raise BackendError(ErrorCode.BAD_AUDIO, message, BAD_AUDIO_HINT)
    samples = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)  # a writable, native-order copy
    if samples.size == 0:
        raise BackendError(
            ErrorCode.BAD_AUDIO, f"the audio stream of {src} is empty (0 samples)", BAD_AUDIO_HINT
        )
    return samples


def check_speech(
    samples: np.ndarray, *, sample_rate: int, min_samples: int, model: str = "this model"
) -> None:
    """Reject audio a model cannot use.

    Raises:
        BackendError(AUDIO_TOO_SHORT): fewer than `min_samples` samples.
        BackendError(BAD_AUDIO): NaN or infinite samples.
        BackendError(SILENT_AUDIO): every sample is exactly zero.
    """
    if samples.size < min_samples:
        raise BackendError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"the audio is {1000 * samples.size / sample_rate:.0f} ms long; {model} needs at least "
            f"{1000 * min_samples / sample_rate:.1f} ms ({min_samples} samples at {sample_rate} Hz)",
            "use a longer speech clip",
        )
    if not np.isfinite(samples).all():
        raise BackendError(ErrorCode.BAD_AUDIO, "the audio contains NaN or infinite samples", BAD_AUDIO_HINT)
    if not samples.any():
        raise BackendError(
            ErrorCode.SILENT_AUDIO,
            f"the audio is digital silence (all {samples.size} samples are zero)",
            "check that the right file or audio track was given",
        )


def stft_magnitude(y: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """|STFT| with a periodic Hann window and centred frames (librosa ``stft(center=True)``).

    The signal is reflect-padded by ``n_fft // 2`` on both sides (librosa < 0.9's default; newer
    librosa pads with zeros), a window shorter than `n_fft` is zero-padded to it in the middle.

    Args:
        y: (N,) samples, N > n_fft // 2.

    Returns:
        (1 + n_fft // 2, 1 + N // hop) float32 magnitudes (for even n_fft).
    """
    if y.ndim != 1 or y.size <= n_fft // 2:
        raise ValueError(f"need a 1-D signal longer than {n_fft // 2} samples, got shape {y.shape}")
    if not 0 < win <= n_fft:
        raise ValueError(f"window length {win} must be in (0, n_fft={n_fft}]")
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    padded = np.pad(np.asarray(y, dtype=np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (T, n_fft) view, no copy
    out = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], STFT_BLOCK_FRAMES):
        block = frames[start : start + STFT_BLOCK_FRAMES]
        out[:, start : start + block.shape[0]] = np.abs(np.fft.rfft(block * window, axis=1)).T
    return out


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Hz to Slaney mels."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = MEL_LOG_START_MEL + np.log(np.maximum(hz, MEL_LOG_START_HZ) / MEL_LOG_START_HZ) / MEL_LOG_STEP
    return np.where(hz >= MEL_LOG_START_HZ, log_part, hz / MEL_HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mels to Hz."""
    mel = np.asarray(mel, dtype=np.float64)
    log_part = MEL_LOG_START_HZ * np.exp(
        MEL_LOG_STEP * (np.maximum(mel, MEL_LOG_START_MEL) - MEL_LOG_START_MEL)
    )
    return np.where(mel >= MEL_LOG_START_MEL, log_part, mel * MEL_HZ_PER_MEL)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters on the Slaney scale with Slaney (area) normalisation.

    Equals ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``
    (htk=False, norm="slaney"). Cached; the returned array is read-only.

    Returns:
        (n_mels, 1 + n_fft // 2) float32; apply as ``filters @ magnitudes``.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,)
    widths = np.diff(edges_hz)  # (n_mels + 1,)
    offsets = edges_hz[:, None] - fft_hz[None, :]  # (n_mels + 2, bins)
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # unit area per filter (Slaney)
    filters = filters.astype(np.float32)
    filters.setflags(write=False)
    return filters
