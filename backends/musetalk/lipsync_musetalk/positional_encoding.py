"""MuseTalk's sinusoidal position encoding of the 50 audio tokens (``musetalk/models/unet.py``).

The classic table of "Attention Is All You Need" (Vaswani et al. 2017): even feature ``2i`` holds
``sin(p * 10000^(-2i/d))``, odd feature ``2i+1`` the cosine of the same angle. It is built in float32 the way
the official module builds it (never loaded from a file) and added to the Whisper tokens before they reach
the UNet's cross-attention.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Final

import torch

__all__ = ["MAX_POSITIONS", "add_positions", "position_table"]

MAX_POSITIONS: Final = 5000  # the official max_len; only the first 50 rows are ever used
_TIMESCALE: Final = 10000.0


@cache
def position_table(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) float32 on the CPU; rows are identical to the official table's first rows."""
    positions = torch.arange(0, length, dtype=torch.float).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(_TIMESCALE) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table


def add_positions(tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` (B, T, D) plus the table's first T rows, in the tokens' device and dtype."""
    _batch, length, d_model = tokens.shape
    return tokens + position_table(length, d_model).to(tokens.device, tokens.dtype)
