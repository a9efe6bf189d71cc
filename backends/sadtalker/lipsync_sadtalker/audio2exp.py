"""Audio2Exp (ExpNet): 64 3DMM expression coefficients per video frame from its mel window.

Zhang et al.: "SadTalker: Learning Realistic 3D Motion Coefficients for Stylized Audio-Driven Single
Image Talking Face Animation", CVPR 2023 (arXiv:2211.12194).

Matches ``SimpleWrapperV2`` in ``src/audio2exp_models/networks.py`` of github.com/OpenTalker/SadTalker
(``cd4c046``): the 93 state-dict keys equal the official ones (safetensors prefix ``audio2exp.``,
old ``auido2exp_00300-model.pth`` under ``['model']``), so the weights load with ``strict=True``.
Independent implementation of the same architecture.
"""

from __future__ import annotations

from typing import Final

import torch
from lipsync_kit.layers import make_audio_encoder
from torch import Tensor, nn

__all__ = ["AUDIO_EMBEDDING", "EXP_DIM", "Audio2Exp"]

AUDIO_EMBEDDING: Final = 512
EXP_DIM: Final = 64  # expression coefficients of the 3DMM
CHUNK_FRAMES: Final = 10  # frames per forward pass upstream; frames are independent, so any size works


class Audio2Exp(nn.Module):
    """Per frame: audio embedding (512) ++ reference expression (64) ++ blink ratio (1) -> Linear -> 64.

    No temporal context beyond the 0.2 s mel window, and no residual to the reference expression.
    """

    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = make_audio_encoder(residual_blocks_at_256=1)
        self.mapping1 = nn.Linear(AUDIO_EMBEDDING + EXP_DIM + 1, EXP_DIM)

    def encode_audio(self, windows: Tensor) -> Tensor:
        """Mel windows (N, 80, 16) -> audio embeddings (N, 512)."""
        return self.audio_encoder(windows.unsqueeze(1)).flatten(1)

    def forward(self, windows: Tensor, ref_exp: Tensor, blink: Tensor) -> Tensor:
        """Expression coefficients of N independent frames.

        Args:
            windows: (N, 80, 16) mel windows.
            ref_exp: (N, 64) reference (source) expression of each frame.
            blink: (N,) eye-closure ratio in [0, 1].

        Returns:
            (N, 64) expression coefficients.
        """
        features = torch.cat([self.encode_audio(windows), ref_exp, blink.unsqueeze(1)], dim=1)
        return self.mapping1(features)

    def predict(
        self, windows: Tensor, ref_exp: Tensor, blink: Tensor, *, chunk_frames: int = CHUNK_FRAMES
    ) -> Tensor:
        """`forward` over a whole sequence, `chunk_frames` frames at a time (bounds the memory).

        Args:
            windows: (T, 80, 16); ref_exp: (T, 64); blink: (T,).

        Returns:
            (T, 64).
        """
        if not len(windows) == len(ref_exp) == len(blink):
            raise ValueError(
                f"frame counts differ: {len(windows)} windows, {len(ref_exp)} ref rows, {len(blink)} blinks"
            )
        chunks = [
            self(windows[i : i + chunk_frames], ref_exp[i : i + chunk_frames], blink[i : i + chunk_frames])
            for i in range(0, len(windows), chunk_frames)
        ]
        return torch.cat(chunks) if chunks else windows.new_zeros((0, EXP_DIM))
