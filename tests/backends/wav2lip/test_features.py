"""Wav2Lip audio features against the official goldens (golden_mel.npz, golden_chunks.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.audio import mel_filterbank
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_wav2lip import features
from standin import load_golden
from tolerances import assert_parity

MEL_ATOL = 1e-5  # reference/wav2lip/README.md: observed 7e-7 against librosa 0.7.0 (reflect padding)
BASIS_ATOL = 1e-6  # the README is silent; 537 float32 steps of the largest weight (0.027)


@pytest.fixture(scope="module")
def golden_mel(wav2lip_data: Path) -> dict[str, np.ndarray]:
    return load_golden(wav2lip_data / "golden_mel.npz")


@pytest.fixture(scope="module")
def chunk_cases(wav2lip_data: Path) -> list[dict]:
    return json.loads((wav2lip_data / "golden_chunks.json").read_text())["chunk_cases"]


def test_mel_basis_matches_golden(golden_mel: dict[str, np.ndarray]) -> None:
    basis = mel_filterbank(
        features.SAMPLE_RATE, features.N_FFT, features.NUM_MELS, features.FMIN, features.FMAX
    )
    assert basis.shape == golden_mel["mel_basis"].shape == (80, 401)
    assert basis.dtype == np.float32
    assert_parity(basis, golden_mel["mel_basis"], BASIS_ATOL, "mel_basis")


def test_melspectrogram_matches_golden(golden_mel: dict[str, np.ndarray]) -> None:
    mel = features.melspectrogram(golden_mel["wav"])
    assert mel.shape == (80, 105)
    assert mel.dtype == np.float32
    assert_parity(mel, golden_mel["mel"], MEL_ATOL, "mel")
    # The edge columns are where reflect and zero padding differ: they must follow reflect.
    edges = [0, 1, 103, 104]
    assert np.abs(mel[:, edges] - golden_mel["mel_modern_librosa"][:, edges]).max() > 0.1


def test_melspectrogram_of_silence_is_the_floor() -> None:
    mel = features.melspectrogram(np.zeros(4000, dtype=np.float32))
    assert mel.shape == (80, 21)
    assert np.all(mel == features.SILENCE_LEVEL)


def test_official_chunk_starts_match_golden(chunk_cases: list[dict]) -> None:
    assert {case["fps"] for case in chunk_cases} >= {25.0, 30.0, 24.0, 30000 / 1001, 60.0, 12.5}
    for case in chunk_cases:
        frames = case["mel_frames"]
        assert frames == 1 + case["num_samples_16k"] // features.HOP_SIZE
        starts = features.official_chunk_starts(frames, case["fps"])
        assert starts == case["chunk_start_columns"], case
        assert len(starts) == case["num_chunks"]
        assert [min(features.MEL_STEP, frames - s) for s in starts] == case["chunk_widths"]


def _unclamped(starts: list[int], mel_frames: int) -> list[int]:
    """Indices of the official chunks that were not replaced by the clamped last window."""
    return [i for i, s in enumerate(starts[:-1]) if s + features.MEL_STEP <= mel_frames]


def test_frame_windows_equal_official_chunks_where_unclamped(chunk_cases: list[dict]) -> None:
    for case in chunk_cases:
        frames, fps = case["mel_frames"], case["fps"]
        if frames < features.MEL_STEP:
            continue
        mel = np.tile(np.arange(frames, dtype=np.float32), (80, 1))  # column j holds j, as in the golden
        mel[1] *= -1  # rows must not be mixed up either
        duration = case["num_samples_16k"] / features.SAMPLE_RATE
        count = features.num_frames_for(duration, fps)
        windows = features.frame_windows(mel, fps, count)
        assert windows.shape == (count, 80, features.MEL_STEP)
        assert windows.dtype == np.float32
        starts = case["chunk_start_columns"]
        checked = _unclamped(starts, frames)
        assert len(checked) == case["num_chunks"] - 1
        for i in checked:
            np.testing.assert_array_equal(windows[i], mel[:, starts[i] : starts[i] + features.MEL_STEP])
        assert count >= case["num_chunks"] - 1  # the tool covers at least what upstream renders


def test_frame_windows_pad_the_tail_with_silence() -> None:
    frames, fps = 105, 25.0  # 20800 samples = 1.3 s -> 33 frames, upstream renders 30
    mel = np.tile(np.arange(frames, dtype=np.float32), (80, 1))
    count = features.num_frames_for(20800 / features.SAMPLE_RATE, fps)
    assert count == 33
    windows = features.frame_windows(mel, fps, count)
    last = windows[-1]  # frame 32 starts at int(32 * 3.2) = 102: columns 102, 103, 104 then padding
    np.testing.assert_array_equal(last[:, :3], mel[:, 102:105])
    assert np.all(last[:, 3:] == features.SILENCE_LEVEL)
    np.testing.assert_array_equal(windows[30], np.concatenate([mel[:, 96:], np.full((80, 7), -4.0)], axis=1))


def test_frame_windows_on_real_mel(golden_mel: dict[str, np.ndarray]) -> None:
    mel = features.melspectrogram(golden_mel["wav"])
    fps = 30000 / 1001
    starts = features.official_chunk_starts(mel.shape[1], fps)
    windows = features.frame_windows(mel, fps, features.num_frames_for(1.3, fps))
    for i in _unclamped(starts, mel.shape[1]):
        np.testing.assert_array_equal(windows[i], mel[:, starts[i] : starts[i] + 16])


@pytest.mark.parametrize(
    ("duration", "fps", "expected"),
    [
        (1.3, 25.0, 33),
        (1.0, 25.0, 25),
        (0.52, 25.0, 13),
        (1.0, 30000 / 1001, 30),
        (0.2, 12.5, 3),
        (0.0, 25.0, 0),
    ],
)
def test_num_frames_for_covers_the_audio(duration: float, fps: float, expected: int) -> None:
    assert features.num_frames_for(duration, fps) == expected


def test_too_short_audio_is_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(BackendError) as err:
        features.check_speech(rng.standard_normal(features.MIN_SAMPLES - 1).astype(np.float32))
    assert err.value.code == ErrorCode.AUDIO_TOO_SHORT
    features.check_speech(rng.standard_normal(features.MIN_SAMPLES).astype(np.float32))  # 16 columns: fine
    short_mel = features.melspectrogram(rng.standard_normal(1000).astype(np.float32))
    assert short_mel.shape == (80, 6)
    with pytest.raises(BackendError) as err:
        features.frame_windows(short_mel, 25.0, 2)
    assert err.value.code == ErrorCode.AUDIO_TOO_SHORT


def test_silent_audio_is_rejected() -> None:
    with pytest.raises(BackendError) as err:
        features.check_speech(np.zeros(16000, dtype=np.float32))
    assert err.value.code == ErrorCode.SILENT_AUDIO
    quiet = np.zeros(16000, dtype=np.float32)
    quiet[8000] = 1 / 32768
    features.check_speech(quiet)


def test_bad_frame_rate_is_an_option_error() -> None:
    with pytest.raises(BackendError) as err:
        features.official_chunk_starts(100, 0.0)
    assert err.value.code == ErrorCode.BAD_OPTION
