"""The Wav2Lip generator.

Prajwal, Mukhopadhyay, Namboodiri, Jawahar: "A Lip Sync Expert Is All You Need for Speech to Lip
Generation In the Wild", ACM Multimedia 2020 (arXiv:2008.10010).

Matches ``models/wav2lip.py`` (class ``Wav2Lip``) of github.com/Rudrabha/Wav2Lip at ``5c90fa9``:
attribute names and parameter shapes reproduce the official state-dict keys (352 entries), so the
released ``wav2lip.pth`` / ``wav2lip_gan.pth`` load with ``strict=True`` once the leading ``module.``
is stripped (see `lipsync_kit.checkpoints`). The official code is released for research and
non-commercial use only; this is an independent implementation of the same architecture.
"""

from __future__ import annotations

from typing import Final

import torch
from lipsync_kit.layers import ConvBlock, conv_stage, make_audio_encoder
from torch import Tensor, nn

from .layers import ConvTransposeBlock

__all__ = ["FACE_SIZE", "MEL_BINS", "MEL_STEP_SIZE", "Wav2Lip"]

FACE_SIZE: Final = 96  # face crops are resized to 96 x 96
MEL_BINS: Final = 80
MEL_STEP_SIZE: Final = 16  # mel columns per video frame window (0.2 s at 80 mel frames per second)


def _up_stage(in_channels: int, out_channels: int, residual_blocks: int) -> list[nn.Module]:
    """A 2x upsampling transposed-conv block followed by residual 3x3 blocks."""
    up = ConvTransposeBlock(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
    rest = [ConvBlock(out_channels, out_channels, 3, 1, 1, residual=True) for _ in range(residual_blocks)]
    return [up, *rest]


class Wav2Lip(nn.Module):
    """Generates the mouth region of a face from a mel window and a masked + reference face pair.

    The face encoder keeps the output of each of its 7 groups as a skip feature. The decoder starts
    from the audio embedding and, after each of its 7 groups, concatenates the deepest unused skip
    feature (decoder output first). Output channel counts, per decoder group, after the concat:
    1024, 1024, 768, 512, 320, 160, 80.
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            nn.Sequential(*blocks)
            for blocks in (
                [ConvBlock(6, 16, 7, 1, 3)],  # 96 x 96
                conv_stage(16, 32, 2),  # 48 x 48
                conv_stage(32, 64, 3),  # 24 x 24
                conv_stage(64, 128, 2),  # 12 x 12
                conv_stage(128, 256, 2),  # 6 x 6
                conv_stage(256, 512, 1),  # 3 x 3
                [ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)],  # 1 x 1
            )
        )
        self.audio_encoder = make_audio_encoder(residual_blocks_at_256=1)
        self.face_decoder_blocks = nn.ModuleList(
            nn.Sequential(*blocks)
            for blocks in (
                [ConvBlock(512, 512, 1, 1, 0)],  # 1 x 1
                [  # 3 x 3
                    ConvTransposeBlock(1024, 512, 3, 1, 0),
                    ConvBlock(512, 512, 3, 1, 1, residual=True),
                ],
                _up_stage(1024, 512, 2),  # 6 x 6
                _up_stage(768, 384, 2),  # 12 x 12
                _up_stage(512, 256, 2),  # 24 x 24
                _up_stage(320, 128, 2),  # 48 x 48
                _up_stage(160, 64, 2),  # 96 x 96
            )
        )
        self.output_block = nn.Sequential(ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1))

    def encode_face(self, face: Tensor) -> list[Tensor]:
        """Face encoder features, shallowest first.

        Args:
            face: (B, 6, 96, 96) float32 in [0, 1]; channels 0-2 the face with its lower half
                zeroed, 3-5 the reference face (BGR, as the official pipeline feeds it).

        Returns:
            7 tensors (B, C, S, S) with (C, S) = (16, 96), (32, 48), (64, 24), (128, 12), (256, 6),
            (512, 3), (512, 1); the last one is the face embedding.
        """
        features = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            features.append(x)
        return features

    def forward(self, audio: Tensor, face: Tensor) -> Tensor:
        """Generate faces.

        Args:
            audio: (B, 1, 80, 16) float32 mel windows, or (B, T, 1, 80, 16) with a 5-D ``face``.
            face: (B, 6, 96, 96) float32 in [0, 1] (see `encode_face`), or (B, 6, T, 96, 96)
                as in the official training loop.

        Returns:
            (B, 3, 96, 96) float32 in (0, 1), BGR; (B, 3, T, 96, 96) for 5-D inputs.
        """
        if face.dim() == 5:
            batch, steps = face.shape[0], face.shape[2]
            frames = self(audio.flatten(0, 1), face.transpose(1, 2).flatten(0, 1))
            return frames.unflatten(0, (batch, steps)).transpose(1, 2)
        if face.shape[-3:] != (6, FACE_SIZE, FACE_SIZE) or audio.shape[-3:] != (1, MEL_BINS, MEL_STEP_SIZE):
            raise ValueError(
                f"expected audio (B, 1, {MEL_BINS}, {MEL_STEP_SIZE}) and face (B, 6, {FACE_SIZE},"
                f" {FACE_SIZE}), got {tuple(audio.shape)} and {tuple(face.shape)}"
            )
        return self.decode(audio, self.encode_face(face))

    def decode(self, audio: Tensor, skips: list[Tensor]) -> Tensor:
        """Generate faces from mel windows and precomputed `encode_face` features.

        A still portrait has one face input for every frame: encode it once and pass its features
        expanded to the batch, instead of running the face encoder per frame.

        Args:
            audio: (B, 1, 80, 16) float32 mel windows.
            skips: the 7 `encode_face` features, each with batch size B (an expanded view is fine).

        Returns:
            (B, 3, 96, 96) float32 in (0, 1), BGR.
        """
        x = self.audio_encoder(audio)  # (B, 512, 1, 1)
        for block, skip in zip(self.face_decoder_blocks, reversed(skips), strict=True):
            x = torch.cat((block(x), skip), dim=1)
        return torch.sigmoid(self.output_block(x))
