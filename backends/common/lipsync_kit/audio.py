"""Audio for every backend: decode any file ffmpeg reads, check it holds speech, the spectral
building blocks (STFT magnitude, Slaney mel filterbank) and the normalised log-mel recipe that
Wav2Lip introduced and SadTalker reuses.

numpy only: the filterbank and STFT follow librosa's definitions (``librosa.filters.mel`` with its
defaults, ``librosa.stft`` with ``center=True``) without depending on librosa or scipy (why: README,
"Design notes").
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np

from ._ffmpeg import base_argv, file_arg, stderr_tail
from .errors import BackendError
from .probe import ffmpeg_reason
from .protocol import ErrorCode

__all__ = [
    "WAV2LIP_LOG_MEL",
    "LogMelRecipe",
    "PadMode",
    "check_speech",
    "hz_to_mel",
    "load_audio",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mel_to_hz",
    "stft_magnitude",
]

PadMode = Literal["reflect", "constant"]  # how a centred STFT pads the signal ends (constant: zeros)

# Slaney's mel scale (Auditory Toolbox; librosa's default, htk=False): linear below 1 kHz, log above.
MEL_HZ_PER_MEL: Final = 200.0 / 3  # 66.67 Hz per mel on the linear part
MEL_LOG_START_HZ: Final = 1000.0  # where the log part starts
MEL_LOG_START_MEL: Final = MEL_LOG_START_HZ / MEL_HZ_PER_MEL  # 15.0 mels
MEL_LOG_STEP: Final = float(np.log(6.4) / 27.0)  # 0.0687: natural-log Hz per mel above 1 kHz

LOG_MEL_BLOCK_COLUMNS: Final = 4096  # mel columns per block (51 s at 16 kHz): memory flat at any length
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
            print(said, file=sys.stderr)  # the whole story goes to the worker's log
            reason = ffmpeg_reason(said)
            message = f"cannot decode audio from {src} ({reason}; ffmpeg exit status {proc.returncode})"
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


def stft_magnitude(y: np.ndarray, n_fft: int, hop: int, win: int, *, pad_mode: PadMode) -> np.ndarray:
    """|STFT| with a periodic Hann window and centred frames (librosa ``stft(center=True)``).

    The signal is padded by ``n_fft // 2`` on both sides, by reflection (librosa < 0.9's default) or
    with zeros (``"constant"``, librosa >= 0.9); a window shorter than `n_fft` is zero-padded to it in
    the middle.

    Args:
        y: (N,) samples; N > n_fft // 2 for reflect padding, N >= 1 for zero padding.
        pad_mode: ``"reflect"`` or ``"constant"``.

    Returns:
        (1 + n_fft // 2, 1 + N // hop) float32 magnitudes (for even n_fft).
    """
    if pad_mode not in ("reflect", "constant"):
        raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
    shortest = n_fft // 2 + 1 if pad_mode == "reflect" else 1
    if y.ndim != 1 or y.size < shortest:
        raise ValueError(f"need a 1-D signal of at least {shortest} samples, got shape {y.shape}")
    if not 0 < win <= n_fft:
        raise ValueError(f"window length {win} must be in (0, n_fft={n_fft}]")
    window = _hann_window(n_fft, win)
    return _padded_stft_magnitude(
        np.pad(np.asarray(y, dtype=np.float64), n_fft // 2, mode=pad_mode), window, hop
    )


def _padded_stft_magnitude(padded: np.ndarray, window: np.ndarray, hop: int) -> np.ndarray:
    """(n_fft // 2 + 1, T) float32 |rfft| of the windowed frames ``padded[t * hop : t * hop + n_fft]``."""
    n_fft = len(window)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (T, n_fft) view, no copy
    out = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.float32)
    for start in range(0, frames.shape[0], STFT_BLOCK_FRAMES):
        block = frames[start : start + STFT_BLOCK_FRAMES]
        out[:, start : start + block.shape[0]] = np.abs(np.fft.rfft(block * window, axis=1)).T
    return out


def _hann_window(n_fft: int, win: int) -> np.ndarray:
    """(n_fft,) float64 periodic Hann of length ``win``, centred and zero-padded to ``n_fft``."""
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    return window


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


@dataclass(frozen=True, slots=True)
class LogMelRecipe:
    """Parameters of a normalised log-mel spectrogram; the defaults are Wav2Lip's ``hparams.py``."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop: int = 200
    win: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0  # symmetric output range [-max_abs_value, max_abs_value]


WAV2LIP_LOG_MEL: Final = LogMelRecipe()  # also SadTalker's (its audio.py/hparams.py are Wav2Lip's)


def log_mel_spectrogram(
    samples: np.ndarray,
    *,
    pad_mode: PadMode,
    recipe: LogMelRecipe = WAV2LIP_LOG_MEL,
    block_columns: int = LOG_MEL_BLOCK_COLUMNS,
) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram (``audio.melspectrogram``).

    Pre-emphasis (first sample kept), |STFT| (Hann, centred, `pad_mode` padding), Slaney mels,
    ``20 log10(max(amin, m)) - ref_level_db`` with ``amin = 10 ** (min_level_db / 20)``, then scaled
    from [min_level_db, 0] dB to [-max_abs_value, max_abs_value] and clipped. With the defaults
    that is 80 mels over 55-7600 Hz, n_fft 800, hop 200, 1e-5 floor, -20 dB, range [-4, 4].

    Args:
        samples: (N,) float audio at ``recipe.sample_rate``.
        pad_mode: ``"reflect"`` for librosa < 0.9 (Wav2Lip's pinned 0.7.0), ``"constant"`` (zeros)
            for librosa >= 0.9 (SadTalker's pinned 0.9.2).

    Returns:
        (n_mels, 1 + N // hop) float32.
    """
    if pad_mode not in ("reflect", "constant"):
        raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
    count, n_fft, hop, pad = len(samples), recipe.n_fft, recipe.hop, recipe.n_fft // 2
    if count < (pad + 1 if pad_mode == "reflect" else 1):
        raise ValueError(f"need more than {pad} samples for {pad_mode} padding, got {count}")
    window = _hann_window(n_fft, recipe.win)
    filters = mel_filterbank(recipe.sample_rate, n_fft, recipe.n_mels, recipe.fmin, recipe.fmax)
    min_amplitude = 10.0 ** (recipe.min_level_db / 20.0)
    top = recipe.max_abs_value
    columns = 1 + count // hop
    out = np.empty((recipe.n_mels, columns), dtype=np.float32)
    # Column blocks bound the float64 scratch at any length; a block reads exactly the samples its
    # frames cover (plus one before, for the pre-emphasis), and pads only at the true ends, so every
    # column is computed as in one pass over the whole signal.
    for first in range(0, columns, block_columns):
        stop = min(columns, first + block_columns)
        low, high = first * hop - pad, (stop - 1) * hop + n_fft - pad  # emphasised samples the block reads
        start, end = max(low, 0), min(high, count)
        y = np.asarray(samples[max(start - 1, 0) : end], dtype=np.float64)
        emphasised = y[1:] - recipe.preemphasis * y[:-1]
        if start == 0:  # the first sample is kept as it is
            emphasised = np.concatenate([y[:1], emphasised])
        padded = np.pad(emphasised, (start - low, high - end), mode=pad_mode)
        magnitude = _padded_stft_magnitude(padded, window, hop)
        db = 20.0 * np.log10(np.maximum(min_amplitude, filters @ magnitude)) - recipe.ref_level_db
        scaled = 2 * top * (db - recipe.min_level_db) / -recipe.min_level_db - top
        out[:, first:stop] = np.clip(scaled, -top, top)
    return out
