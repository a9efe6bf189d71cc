"""Audio2Pose (PoseVAE): head-pose motion (3 angles + 3 translations) per video frame from speech.

Zhang et al.: "SadTalker: Learning Realistic 3D Motion Coefficients for Stylized Audio-Driven Single
Image Talking Face Animation", CVPR 2023 (arXiv:2211.12194), section 3.2.

Matches ``Audio2Pose`` in ``src/audio2pose_models/`` of github.com/OpenTalker/SadTalker (``cd4c046``,
config ``auido2pose.yaml``): the 419 state-dict keys equal the official ones (safetensors prefix
``audio2pose.``, old ``auido2pose_00140-model.pth`` under ``['model']``), so the weights load with
``strict=True``. Inference runs only the conditional VAE's decoder; the CVAE encoder and the motion
discriminator are training-time parts that exist here only so that the checkpoint loads.
Independent implementation of the same architecture.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import torch
from lipsync_kit.layers import make_audio_encoder
from torch import Tensor, nn

from .resunet import ResUnet

__all__ = [
    "LATENT_DIM",
    "NUM_POSE_STYLES",
    "POSE_DIM",
    "SEQ_LEN",
    "Audio2Pose",
    "PoseDecoder",
    "pose_chunk_count",
]

AUDIO_EMBEDDING: Final = 512
AUDIO_POSE_FEATURES: Final = 6  # per-frame audio embedding projected to this many values
POSE_DIM: Final = 6  # yaw, pitch, roll (radians) and 3D translation
SEQ_LEN: Final = 32  # frames decoded together from one latent
LATENT_DIM: Final = 64
NUM_POSE_STYLES: Final = 46  # `--pose_style` classes, each a learned latent offset
DECODER_INPUT: Final = POSE_DIM + LATENT_DIM + SEQ_LEN * AUDIO_POSE_FEATURES  # 262
DECODER_HIDDEN: Final = 128
# Upstream's encoder input: its configured first layer size (192) plus latent, audio and pose widths,
# added in place by mistake; it is 454 in the released weights.
ENCODER_INPUT: Final = 192 + LATENT_DIM + SEQ_LEN * AUDIO_POSE_FEATURES + POSE_DIM
ENCODER_BATCH_FRAMES: Final = 256  # mel windows per audio-encoder call (bounds the activations)


class AudioSequenceEncoder(nn.Module):
    """The per-frame mel-window encoder applied to a frame sequence (keys ``audio_encoder.*``)."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = make_audio_encoder(residual_blocks_at_256=1)

    def forward(self, windows: Tensor, *, batch_frames: int = ENCODER_BATCH_FRAMES) -> Tensor:
        """Mel windows (B, T, 80, 16) -> embeddings (B, T, 512), `batch_frames` windows per call."""
        flat = windows.flatten(0, 1).unsqueeze(1)
        pieces = [self.audio_encoder(flat[i : i + batch_frames]) for i in range(0, len(flat), batch_frames)]
        embedded = torch.cat(pieces) if pieces else flat.new_zeros((0, AUDIO_EMBEDDING))
        return embedded.view(*windows.shape[:2], AUDIO_EMBEDDING)


class PoseDecoder(nn.Module):
    """CVAE decoder: (latent, style, reference pose, 32 audio embeddings) -> 32 frames of pose motion.

    z + style bias, the reference pose and the 32 audio embeddings (each projected 512 -> 6) go
    through an MLP (262 -> 128 -> 192, sigmoid) that is read as a 32 x 6 plane, refined by a
    `ResUnet`, and mapped by a final Linear(6 -> 6).
    """

    def __init__(self) -> None:
        super().__init__()
        self.classbias = nn.Parameter(torch.zeros(NUM_POSE_STYLES, LATENT_DIM))
        self.resunet = ResUnet()
        self.MLP = nn.Sequential(
            OrderedDict(
                L0=nn.Linear(DECODER_INPUT, DECODER_HIDDEN),
                A0=nn.ReLU(),
                L1=nn.Linear(DECODER_HIDDEN, SEQ_LEN * POSE_DIM),
                A1=nn.Sigmoid(),
            )
        )
        self.pose_linear = nn.Linear(POSE_DIM, POSE_DIM)
        self.linear_audio = nn.Linear(AUDIO_EMBEDDING, AUDIO_POSE_FEATURES)

    def forward(self, z: Tensor, ref_pose: Tensor, audio_embedding: Tensor, style: Tensor) -> Tensor:
        """Pose motion of one 32-frame chunk per batch row.

        Args:
            z: (B, 64) latent sample.
            ref_pose: (B, 6) pose of the source frame.
            audio_embedding: (B, 32, 512) audio-encoder outputs of the chunk's frames.
            style: (B,) int64 pose-style class in [0, 46).

        Returns:
            (B, 32, 6) motion relative to `ref_pose`.
        """
        batch = len(z)
        audio = self.linear_audio(audio_embedding).reshape(batch, SEQ_LEN * AUDIO_POSE_FEATURES)
        hidden = self.MLP(torch.cat([ref_pose, z + self.classbias[style], audio], dim=1))
        plane = self.resunet(hidden.view(batch, 1, SEQ_LEN, POSE_DIM))
        return self.pose_linear(plane.squeeze(1))


class PoseEncoder(nn.Module):
    """CVAE encoder (training only). Holds the official parameters; never run at inference."""

    def __init__(self) -> None:
        super().__init__()
        self.classbias = nn.Parameter(torch.zeros(NUM_POSE_STYLES, LATENT_DIM))
        self.resunet = ResUnet()
        self.MLP = nn.Sequential(OrderedDict(L0=nn.Linear(ENCODER_INPUT, DECODER_HIDDEN), A0=nn.ReLU()))
        self.linear_means = nn.Linear(DECODER_HIDDEN, LATENT_DIM)
        self.linear_logvar = nn.Linear(DECODER_HIDDEN, LATENT_DIM)
        self.linear_audio = nn.Linear(AUDIO_EMBEDDING, AUDIO_POSE_FEATURES)


class PoseCVAE(nn.Module):
    """The conditional VAE; inference uses `decoder` only."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = PoseEncoder()
        self.decoder = PoseDecoder()


class ConvNormRelu1d(nn.Module):
    """Unbiased Conv1d + BatchNorm1d (+ ReLU) of the motion discriminator; parameters only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)


class MotionDiscriminator(nn.Module):
    """Pose-sequence discriminator (training only). Holds the official parameters; never run."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvNormRelu1d(POSE_DIM, 256, 4),
            ConvNormRelu1d(256, 512, 4),
            ConvNormRelu1d(512, 1024, 3),
            nn.Conv1d(1024, 1, 3),
        )


def pose_chunk_count(num_frames: int) -> int:
    """Latent draws for a `num_frames` sequence: one per 32 frames after the first, rounded up."""
    return -(-max(0, num_frames - 1) // SEQ_LEN)


def _chunk_frames(frames: int, device: torch.device) -> Tensor:
    """(chunks, 32) indices into `frames` embeddings: whole 32-frame chunks, then the last 32 frames
    for the remainder, repeating frame 0 in front when there are fewer than 32."""
    full, remainder = divmod(frames, SEQ_LEN)
    steps = torch.arange(SEQ_LEN, device=device)
    rows = [k * SEQ_LEN + steps for k in range(full)]
    if remainder:
        rows.append((frames - SEQ_LEN + steps).clamp(min=0))
    return torch.stack(rows)


class Audio2Pose(nn.Module):
    """Head-pose motion for a whole sequence; frame 0 (the source frame) has zero motion."""

    def __init__(self) -> None:
        super().__init__()
        self.audio_encoder = AudioSequenceEncoder()
        self.netG = PoseCVAE()
        self.netD_motion = MotionDiscriminator()

    def forward(
        self,
        windows: Tensor,
        ref_pose: Tensor,
        style: Tensor,
        *,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Pose motion of every frame, relative to `ref_pose`.

        Frames 1..T-1 are decoded in 32-frame chunks, each from its own latent z ~ N(0, I); the
        leftover frames are the tail of one more chunk made of the last 32 frames.

        Args:
            windows: (B, T, 80, 16) mel windows.
            ref_pose: (B, 6) pose of the source frame.
            style: (B,) int64 pose-style class in [0, 46).
            noise: (pose_chunk_count(T), B, 64) latents to use instead of drawing them.
            generator: source of the latents when `noise` is None (any device); None uses torch's
                global generator.

        Returns:
            (B, T, 6) pose motion; row 0 is zero.
        """
        batch, frames = windows.shape[:2]
        motion = windows.new_zeros((batch, frames, POSE_DIM))
        chunks = pose_chunk_count(frames)
        if chunks == 0:
            return motion
        if noise is None:
            noise_device = generator.device if generator is not None else windows.device
            noise = torch.randn((chunks, batch, LATENT_DIM), generator=generator, device=noise_device)
        if noise.shape != (chunks, batch, LATENT_DIM):
            raise ValueError(
                f"noise must be {(chunks, batch, LATENT_DIM)} for {frames} frames, got {noise.shape}"
            )
        z = noise.to(device=windows.device, dtype=windows.dtype).flatten(0, 1)  # rows: chunk-major

        embedding = self.audio_encoder(windows[:, 1:])  # (B, T - 1, 512)
        order = _chunk_frames(frames - 1, windows.device)  # (chunks, 32)
        audio = embedding[:, order].transpose(0, 1).flatten(0, 1)  # (chunks * B, 32, 512)
        decoded = self.netG.decoder(z, ref_pose.repeat(chunks, 1), audio, style.repeat(chunks))
        decoded = decoded.view(chunks, batch, SEQ_LEN, POSE_DIM).transpose(0, 1)  # (B, chunks, 32, 6)

        full, remainder = divmod(frames - 1, SEQ_LEN)
        motion[:, 1 : 1 + full * SEQ_LEN] = decoded[:, :full].flatten(1, 2)
        if remainder:
            motion[:, 1 + full * SEQ_LEN :] = decoded[:, full, SEQ_LEN - remainder :]
        return motion
