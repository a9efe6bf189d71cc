"""The audio-video offset search and the scores it yields (syncnet_python ``SyncNetInstance.evaluate``).

Each lip window is compared with the audio windows up to ``vshift`` frames before and after it (audio
features zero-padded at both ends); the distance curve is averaged over frames. LSE-D is its minimum,
LSE-C the median minus the minimum, and the offset ``vshift - argmin`` in frames: ``-k`` when the sound
of frame i matches the picture of frame i - k (audio late by k frames), ``+k`` when it is early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch import Tensor

__all__ = ["DEFAULT_VSHIFT", "PAIRWISE_EPS", "SyncScores", "distance_matrix", "median_filter", "sync_scores"]

DEFAULT_VSHIFT: Final = 15  # run_syncnet.py --vshift: +-15 frames (+-0.6 s at 25 fps)
PAIRWISE_EPS: Final = 1e-6  # torch.nn.functional.pairwise_distance adds it to the difference
FRAMEWISE_KERNEL: Final = 9  # median filter over the per-frame confidence


@dataclass(frozen=True)
class SyncScores:
    """The result of the offset search over one face track."""

    min_dist: float  # LSE-D: the lowest mean distance over the offsets (lower is better)
    confidence: float  # LSE-C: median minus minimum of the mean distances (higher is better)
    offset: int  # frames; vshift - argmin
    offsets: tuple[int, ...]  # the offset of each curve entry: vshift, vshift - 1, ..., -vshift
    mean_dists: tuple[float, ...]  # mean distance per offset
    framewise: tuple[float, ...]  # per-window confidence at the best offset, median-filtered (9)

    @property
    def curve(self) -> tuple[float, ...]:
        """Confidence per offset: median of the mean distances minus the distance there."""
        median = float(np.median(self.mean_dists))
        return tuple(median - d for d in self.mean_dists)


def distance_matrix(lip: Tensor, audio: Tensor, vshift: int = DEFAULT_VSHIFT) -> Tensor:
    """(N, 2 * vshift + 1) distances: row i, column j compares lip window i with audio window i + j - vshift.

    Audio windows outside [0, N) are zero vectors, as in the official zero padding.
    """
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    count = lip.shape[0]
    columns = [
        torch.linalg.vector_norm(lip - padded[j : j + count] + PAIRWISE_EPS, dim=1)
        for j in range(2 * vshift + 1)
    ]
    return torch.stack(columns, dim=1)


def median_filter(values: np.ndarray, kernel: int = FRAMEWISE_KERNEL) -> np.ndarray:
    """Running median over an odd window with zero padding at both ends (scipy.signal.medfilt)."""
    half = kernel // 2
    padded = np.concatenate([np.zeros(half), np.asarray(values, dtype=np.float64), np.zeros(half)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel), axis=1)


def sync_scores(lip: Tensor, audio: Tensor, vshift: int = DEFAULT_VSHIFT) -> SyncScores:
    """Scores of one track from its (N, 1024) lip and audio embeddings (same N, window i with window i)."""
    dists = distance_matrix(lip.float(), audio.float(), vshift)
    mean = dists.mean(dim=0)
    best = int(torch.argmin(mean))
    median = torch.median(mean)
    framewise = median.numpy() - dists[:, best].numpy()
    return SyncScores(
        min_dist=float(mean[best]),
        confidence=float(median - mean[best]),
        offset=vshift - best,
        offsets=tuple(range(vshift, -vshift - 1, -1)),
        mean_dists=tuple(float(d) for d in mean),
        framewise=tuple(float(c) for c in median_filter(framewise)),
    )
