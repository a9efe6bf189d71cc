"""SadTalker audio features against golden_audio.npz, and the blink-track rules."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.audio import log_mel_spectrogram, mel_filterbank
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_sadtalker import audio_features as af
from standin import load_golden
from tolerances import assert_parity

ATOL = 1e-4  # reference/sadtalker/README.md: mel_T80, indiv_mels (observed 7e-7)
BASIS_ATOL = 1e-6  # no README entry for the basis; observed 2e-9


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_audio.npz")


def test_frame_count_and_trim(golden: dict[str, np.ndarray]) -> None:
    wav = golden["wav_float32"]
    assert af.frame_count(len(wav)) == golden["num_frames"] == 50
    assert len(af.trim_to_frames(wav)) == golden["wav_length"] == 32000
    assert af.frame_count(639) == 0 and af.frame_count(640) == 1 and af.frame_count(1279) == 1
    assert len(af.trim_to_frames(np.zeros(1279, dtype=np.float32))) == 640


def test_mel_basis_matches_golden(golden: dict[str, np.ndarray]) -> None:
    assert_parity(mel_filterbank(16000, 800, 80, 55.0, 7600.0), golden["mel_basis"], BASIS_ATOL, "mel_basis")


def test_melspectrogram_matches_golden(golden: dict[str, np.ndarray]) -> None:
    mel = af.melspectrogram(af.trim_to_frames(golden["wav_float32"]))
    assert mel.shape == (80, 161) and mel.dtype == np.float32
    assert_parity(mel.T, golden["mel_T80"], ATOL, "mel_T80")
    # Zero padding, not reflection: the edge columns would differ by far more than the tolerance.
    reflect = log_mel_spectrogram(af.trim_to_frames(golden["wav_float32"]), pad_mode="reflect")
    assert np.abs(reflect[:, -1] - golden["mel_T80"][-1]).max() > 0.1


def test_mel_windows_match_golden(golden: dict[str, np.ndarray]) -> None:
    windows = af.mel_windows(golden["wav_float32"])
    assert windows.shape == golden["indiv_mels"].shape == (50, 80, 16)
    assert windows.dtype == np.float32
    assert_parity(windows, golden["indiv_mels"], ATOL, "indiv_mels")


def test_extra_samples_past_the_last_frame_are_dropped(golden: dict[str, np.ndarray]) -> None:
    wav = golden["wav_float32"]
    longer = np.concatenate([wav, np.ones(639, dtype=np.float32)])
    np.testing.assert_array_equal(af.mel_windows(longer), af.mel_windows(wav))


def test_window_starts_truncate_toward_zero() -> None:
    # 80 * (i - 2) / 25: -6.4 -> -6 and -3.2 -> -3 (floor would give -7, -4), then 0, 3.2 -> 3, 6.4 -> 6.
    assert af.window_starts(6).tolist() == [-6, -3, 0, 3, 6, 9]
    assert af.window_starts(0).shape == (0,)


def test_window_columns_are_clamped() -> None:
    mel = np.arange(80 * 10, dtype=np.float32).reshape(80, 10)  # 10 columns; frame 3 starts at column 3
    windows = af.frame_windows(mel, 4)
    assert windows.shape == (4, 80, 16)
    np.testing.assert_array_equal(windows[0, 0], [0] * 7 + list(range(1, 10)))  # starts at -6
    np.testing.assert_array_equal(windows[3, 0], list(range(3, 10)) + [9] * 9)  # runs past the end


def test_too_short_or_silent_audio_is_rejected() -> None:
    with pytest.raises(BackendError) as err:
        af.check_speech(np.ones(639, dtype=np.float32))
    assert err.value.code == ErrorCode.AUDIO_TOO_SHORT
    with pytest.raises(BackendError) as err:
        af.check_speech(np.zeros(640, dtype=np.float32))
    assert err.value.code == ErrorCode.SILENT_AUDIO
    af.check_speech(np.ones(640, dtype=np.float32))
    assert af.mel_windows(np.ones(640, dtype=np.float32)).shape == (1, 80, 16)
    with pytest.raises(ValueError, match="at least 640"):
        af.mel_windows(np.ones(639, dtype=np.float32))


def test_blink_rules_reproduce_upstream_with_python_random(golden: dict[str, np.ndarray]) -> None:
    random.seed(0)
    track = af.place_blinks(50, lambda low, high: random.choice(range(low, high)))
    np.testing.assert_array_equal(track, golden["blink_ratio_random_seed0"])


def test_blink_ratio_is_deterministic_for_a_seed() -> None:
    first = af.blink_ratio(500, np.random.default_rng(7))
    np.testing.assert_array_equal(first, af.blink_ratio(500, np.random.default_rng(7)))
    assert not np.array_equal(first, af.blink_ratio(500, np.random.default_rng(8)))


def _blinks(track: np.ndarray) -> list[int]:
    """Start frames of the nonzero runs; asserts every run is exactly the 5-frame pattern."""
    nonzero = np.flatnonzero(track)
    starts = [int(i) for i in nonzero if i == 0 or track[i - 1] == 0]
    for start in starts:
        np.testing.assert_array_equal(track[start : start + 5], af.BLINK_PATTERN)
    assert len(nonzero) == 5 * len(starts)
    return starts


@pytest.mark.parametrize("frames", [22, 23, 40, 60, 139, 140, 141, 400, 3000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blink_tracks_follow_the_rules(frames: int, seed: int) -> None:
    track = af.blink_ratio(frames, np.random.default_rng(seed))
    assert track.shape == (frames,) and track.dtype == np.float32
    starts = _blinks(track)
    high = min(frames // 2, 70)
    previous_end = 0
    for start in starts:
        assert 10 <= start - previous_end < high
        previous_end = start + 5
    assert previous_end <= frames - 1  # a blink never reaches the last frame
    assert frames - 1 - previous_end < (high - 1) + 5  # it stops only when a drawn gap leaves no room


def test_blink_placement_is_greedy_until_the_end() -> None:
    # Always the shortest gap: blinks at 10, 25, 40, ...; the last one must end before frame T - 1.
    track = af.place_blinks(60, lambda low, high: low)
    assert _blinks(track) == [10, 25, 40]  # 55..59 would reach the last frame (59)
    track = af.place_blinks(61, lambda low, high: low)
    assert _blinks(track) == [10, 25, 40, 55]


@pytest.mark.parametrize("frames", [0, 1, 20, 21])
def test_short_sequences_have_no_blinks(frames: int) -> None:
    # Upstream: none up to 20 frames; at 21 its gap range is empty (it raises), here: none.
    assert not af.blink_ratio(frames, np.random.default_rng(0)).any()
