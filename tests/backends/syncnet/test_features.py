"""MFCC features and the offset search against the official goldens."""

from __future__ import annotations

import numpy as np
import torch
from lipsync_syncnet.mfcc import mfcc
from lipsync_syncnet.offsets import distance_matrix, median_filter, sync_scores

MFCC_ATOL = (
    1e-9  # float64 throughout; values up to ~40 (spacing 7e-15), the DCT is a matrix here vs scipy's FFT
)


def test_mfcc_matches_python_speech_features(golden: dict[str, np.ndarray]) -> None:
    ours = mfcc(golden["audio"])
    assert ours.shape == golden["mfcc"].shape == (13, 159)
    np.testing.assert_allclose(ours, golden["mfcc"], rtol=0, atol=MFCC_ATOL)


def test_mfcc_of_short_and_silent_audio() -> None:
    assert mfcc(np.ones(300, dtype=np.int16)).shape == (13, 1)
    silent = mfcc(np.zeros(1600, dtype=np.int16))
    assert np.isfinite(silent).all()


def test_offset_search_finds_a_known_shift(golden: dict[str, np.ndarray]) -> None:
    lip, audio = torch.from_numpy(golden["search_v"]), torch.from_numpy(golden["search_a"])
    np.testing.assert_allclose(distance_matrix(lip, audio).numpy(), golden["search_dists"], rtol=0, atol=1e-4)
    scores = sync_scores(lip, audio)
    np.testing.assert_allclose(scores.mean_dists, golden["search_mdist"], rtol=0, atol=1e-4)
    assert scores.offset == -4  # the audio features were moved 4 frames later


def test_scores_match_official_evaluate(golden: dict[str, np.ndarray]) -> None:
    lip, audio = torch.from_numpy(golden["lip_embedding"]), torch.from_numpy(golden["audio_embedding"])
    scores = sync_scores(lip, audio)
    # Distances ~460 (float32 spacing 3e-5); the norms are summed in another order than the official loop.
    np.testing.assert_allclose(distance_matrix(lip, audio).numpy(), golden["dists"], rtol=0, atol=2e-3)
    np.testing.assert_allclose(scores.mean_dists, golden["mdist"], rtol=0, atol=2e-3)
    assert scores.offset == int(golden["offset"])
    assert abs(scores.min_dist - float(golden["min_dist"])) < 2e-3
    assert abs(scores.confidence - float(golden["conf"])) < 2e-3
    np.testing.assert_allclose(scores.framewise, golden["framewise_conf"], rtol=0, atol=4e-3)


def test_median_filter_pads_with_zeros() -> None:
    np.testing.assert_array_equal(median_filter(np.array([5.0, 5.0, 5.0]), 3), [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(median_filter(np.array([5.0, 1.0, 5.0, 9.0]), 3), [1.0, 5.0, 5.0, 5.0])
