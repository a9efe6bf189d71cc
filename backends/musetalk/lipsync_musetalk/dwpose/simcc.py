"""SimCC flip test and decoding (mmpose's ``flip_vectors`` and ``get_simcc_maximum``, split ratio 2).

Each keypoint gets one logit vector over x bins and one over y bins; its location is the argmax of each
(the first index on ties, as numpy) divided by the split ratio, and its score the smaller of the two maxima.
A keypoint whose score is not positive is placed at -1 before the division, as mmpose does.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
from torch import Tensor

from .keypoints import FLIP_INDICES

__all__ = ["SPLIT_RATIO", "decode", "flip_back", "merge_flip_test"]

SPLIT_RATIO: Final = 2.0  # SimCC bins per model-input pixel


def flip_back(x_flipped: Tensor, y_flipped: Tensor) -> tuple[Tensor, Tensor]:
    """Logits of a horizontally flipped input, brought back to the unflipped keypoints and x axis."""
    index = torch.as_tensor(FLIP_INDICES, device=x_flipped.device)
    return x_flipped[:, index].flip(-1), y_flipped[:, index]


def merge_flip_test(x: Tensor, y: Tensor, x_flipped: Tensor, y_flipped: Tensor) -> tuple[Tensor, Tensor]:
    """The flip test's average of the plain and the flipped-back logits."""
    x_back, y_back = flip_back(x_flipped, y_flipped)
    return (x + x_back) * 0.5, (y + y_back) * 0.5


def decode(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, Wx) and (N, K, Wy) logits -> keypoints (N, K, 2) in model-input pixels and scores (N, K).

    Both float32, as mmpose computes them.
    """
    locations = np.stack((simcc_x.argmax(-1), simcc_y.argmax(-1)), axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    locations[scores <= 0] = -1
    return locations / np.float32(SPLIT_RATIO), scores
