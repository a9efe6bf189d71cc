"""The colour SyncNet ("lip-sync expert") used by Wav2Lip as a frozen sync discriminator.

Prajwal, Mukhopadhyay, Namboodiri, Jawahar: "A Lip Sync Expert Is All You Need for Speech to Lip
Generation In the Wild", ACM Multimedia 2020 (arXiv:2008.10010), section 3.2.

Matches ``models/syncnet.py`` (class ``SyncNet_color``) of github.com/Rudrabha/Wav2Lip at
``5c90fa9``; attribute names and shapes reproduce the official state-dict keys (217 entries), so
``lipsync_expert.pth`` loads with ``strict=True``. Not to be confused with the original SyncNet
(joonson/syncnet_python) that the paper's LSE-D / LSE-C metrics use.
"""

from __future__ import annotations

import torch.nn.functional as F
from lipsync_kit.layers import ConvBlock, conv_stage, make_audio_encoder
from torch import Tensor, nn

__all__ = ["SyncNetColor"]


class SyncNetColor(nn.Module):
    """Embeds a mel window and 5 lower-half face frames into one 512-d space; in sync = high cosine."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder = nn.Sequential(
            ConvBlock(15, 32, 7, 1, 3),  # 48 x 96
            *conv_stage(32, 64, 2, kernel_size=5, stride=(1, 2), padding=1),  # 46 x 47
            *conv_stage(64, 128, 3),  # 23 x 24
            *conv_stage(128, 256, 2),  # 12 x 12
            *conv_stage(256, 512, 2),  # 6 x 6
            *conv_stage(512, 512, 0),  # 3 x 3
            ConvBlock(512, 512, 3, 1, 0),  # 1 x 1
            ConvBlock(512, 512, 1, 1, 0),
        )
        self.audio_encoder = make_audio_encoder(residual_blocks_at_256=2)

    def forward(self, audio: Tensor, face: Tensor) -> tuple[Tensor, Tensor]:
        """Embed both streams.

        Args:
            audio: (B, 1, 80, 16) float32 mel window.
            face: (B, 15, 48, 96) float32 in [0, 1]: 5 consecutive BGR frames stacked on channels,
                rows 48..95 (lower half) of each 96 x 96 face crop.

        Returns:
            (audio_embedding, face_embedding), each (B, 512) float32 with unit L2 norm per row.
        """
        audio_embedding = self.audio_encoder(audio).flatten(1)
        face_embedding = self.face_encoder(face).flatten(1)
        return F.normalize(audio_embedding, p=2, dim=1), F.normalize(face_embedding, p=2, dim=1)
