"""MuseTalk 1.5's face crop, its masked and reference latents, the single UNet step and the decode.

Follows ``scripts/inference.py`` (the v1.5 crop) and ``musetalk/models/vae.py`` of TMElyralab/MuseTalk:

- the face box grows ``extra_margin`` px below the chin (clipped at the frame), and the crop is stretched to
  256x256 with Lanczos;
- the VAE encodes the crop twice, once with its lower half blacked out (the mouth to re-draw) and once whole
  (the reference), each as ``0.18215 * (mean + std * eps)``; the two 4-channel latents make the UNet's 8
  input channels;
- the UNet runs once, at timestep 0, with the position-encoded audio tokens as cross-attention context;
- the VAE decodes ``unet_out / 0.18215`` to a 256x256 BGR face.

The official encode draws ``eps`` from the global RNG (``latent_dist.sample()``) with no seed, so two official
runs differ. Here the reference latents use the distribution's mean (``eps = 0``, what MuseTalk's training
uses) unless noise is passed in, which the parity tests do with the goldens' stored draws.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import torch

from .positional_encoding import add_positions

__all__ = [
    "CROP_SIZE",
    "Box",
    "crop_face",
    "decode_faces",
    "encode_latents",
    "generate_latents",
    "vae_input",
]

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, as the official coordinates

CROP_SIZE: Final = 256  # the UNet's face size; latents are 4 x 32 x 32
VAE_SCALE: Final = 0.18215  # sd-vae's scaling_factor (the diffusers default; not in the config file)
UNET_TIMESTEP: Final = 0  # one step, not a diffusion loop


def crop_face(frame_bgr: np.ndarray, box: Box, extra_margin: int) -> np.ndarray:
    """(256, 256, 3) uint8 BGR: the v1.5 crop of ``box`` with ``extra_margin`` px more below, stretched."""
    x1, y1, x2, y2 = box
    y2 = min(y2 + extra_margin, frame_bgr.shape[0])
    return cv2.resize(frame_bgr[y1:y2, x1:x2], (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LANCZOS4)


def vae_input(crops_bgr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked and the reference VAE inputs of (B, 256, 256, 3) uint8 BGR crops.

    Returns:
        two (B, 3, 256, 256) float32 RGB tensors in [-1, 1]; in the masked one rows 128.. are -1 (black).
    """
    rgb = np.ascontiguousarray(crops_bgr[..., ::-1])
    unit = (rgb / 255.0).astype(np.float32)  # the official divides in float64 first
    # Contiguous NCHW, not a channels-last view: the CPU GroupNorm of channels-last tensors is far less
    # exact (1e-3 off on the masked crop's constant half, against 5e-7 for NCHW; torch 2.15).
    reference = torch.from_numpy(unit).permute(0, 3, 1, 2).contiguous()
    masked = reference.clone()
    masked[:, :, CROP_SIZE // 2 :] = 0
    return (masked - 0.5) / 0.5, (reference - 0.5) / 0.5


def encode_latents(
    vae: torch.nn.Module, crops_bgr: np.ndarray, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 8, 32, 32) UNet input: masked latent then reference latent, in the VAE's device and dtype.

    Args:
        vae: the ``AutoencoderKL``.
        crops_bgr: (B, 256, 256, 3) uint8 BGR crops from `crop_face`.
        noise: (B, 2, 4, 32, 32) draws for ``mean + std * eps`` (masked first), as the official ``sample()``
            consumes them; None for the mean.
    """
    parameter = next(vae.parameters())
    masked, reference = vae_input(crops_bgr)
    batch = torch.cat([masked, reference]).to(parameter.device, parameter.dtype)  # one VAE call for both
    posterior = vae.encode(batch).latent_dist
    latents = posterior.mean
    if noise is not None:
        eps = noise.transpose(0, 1).reshape(latents.shape).to(latents.device, latents.dtype)
        latents = latents + posterior.std * eps
    latents = VAE_SCALE * latents
    count = len(crops_bgr)
    return torch.cat([latents[:count], latents[count:]], dim=1)


def generate_latents(
    unet: torch.nn.Module, latents: torch.Tensor, audio_tokens: torch.Tensor
) -> torch.Tensor:
    """(B, 4, 32, 32): the UNet's single step on (B, 8, 32, 32) latents and (B, 50, 384) raw Whisper tokens
    (the position table is added here, in the UNet's dtype)."""
    parameter = next(unet.parameters())
    context = add_positions(audio_tokens.to(parameter.device, parameter.dtype))
    timestep = torch.tensor([UNET_TIMESTEP], device=parameter.device)
    return unet(latents.to(parameter.device, parameter.dtype), timestep, encoder_hidden_states=context).sample


def decode_faces(vae: torch.nn.Module, latents: torch.Tensor) -> np.ndarray:
    """(B, 256, 256, 3) uint8 BGR faces from (B, 4, 32, 32) UNet outputs."""
    parameter = next(vae.parameters())
    # Multiplying by the float32 reciprocal is what the official decode does (bit-exact; a division is not).
    scaled = (1 / VAE_SCALE) * latents.to(parameter.device, parameter.dtype)
    images = vae.decode(scaled).sample
    images = (images / 2 + 0.5).clamp(0, 1).float()
    rgb = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(rgb.cpu().numpy()[..., ::-1])
