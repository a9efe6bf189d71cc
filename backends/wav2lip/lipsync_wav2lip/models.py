"""Build the Wav2Lip networks and fill them from checkpoint files."""

from __future__ import annotations

import os

import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from torch import nn

from .layers import fold_batchnorm
from .syncnet import SyncNetColor
from .wav2lip import Wav2Lip

__all__ = ["load_generator", "load_syncnet"]


def _load(
    model: nn.Module, path: str | os.PathLike[str], device: str | torch.device, *, fold_bn: bool
) -> nn.Module:
    load_into(model, load_state_dict_file(path), source=str(path))
    model = fold_batchnorm(model) if fold_bn else model.eval().requires_grad_(False)
    return model.to(device)


def load_generator(
    path: str | os.PathLike[str], device: str | torch.device, *, fold_bn: bool = True
) -> nn.Module:
    """A `Wav2Lip` generator in eval mode on ``device``, loaded strictly from ``path``.

    Args:
        path: ``wav2lip.pth`` / ``wav2lip_gan.pth`` (official training container or bare state dict)
            or a ``.safetensors`` file.
        device: where the model runs.
        fold_bn: fold each BatchNorm into its convolution (same outputs within float rounding,
            faster; the returned model is then inference-only).

    Raises:
        lipsync_kit.errors.BackendError: ``weights_missing`` or ``bad_checkpoint``.
    """
    return _load(Wav2Lip(), path, device, fold_bn=fold_bn)


def load_syncnet(
    path: str | os.PathLike[str], device: str | torch.device, *, fold_bn: bool = True
) -> nn.Module:
    """A `SyncNetColor` expert in eval mode on ``device``, loaded strictly from ``lipsync_expert.pth``."""
    return _load(SyncNetColor(), path, device, fold_bn=fold_bn)
