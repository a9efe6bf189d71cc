"""Load MuseTalk 1.5's stock networks from the official files, strictly, under the official key names.

- UNet: ``diffusers.UNet2DConditionModel(**musetalk.json)`` with ``unet.pth`` (a raw fp32 state dict);
- VAE: ``diffusers.AutoencoderKL`` from sd-vae-ft-mse's ``config.json`` and its weights (``.safetensors`` or
  ``.bin``), whose mid-block attention still uses the pre-0.14 diffusers names (query/key/value/proj_attn);
- Whisper-tiny: ``transformers.WhisperModel`` from ``config.json`` and ``model.safetensors`` (keys
  ``model.<key>``, the tied ``proj_out`` left out) plus the ``WhisperFeatureExtractor`` of
  ``preprocessor_config.json``. Only the encoder is kept.

The networks are built on the ``meta`` device and take the file's tensors as they are (``assign=True``), so an
850M-parameter UNet is never initialised at random first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

__all__ = [
    "VAE_LEGACY_NAMES",
    "load_feature_extractor",
    "load_unet",
    "load_vae",
    "load_whisper_encoder",
    "read_config",
]

# sd-vae-ft-mse was saved by diffusers 0.4, before the attention projections were renamed (diffusers 0.14).
VAE_LEGACY_NAMES: Final = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}
WHISPER_FILE_PREFIX: Final = "model."  # WhisperForConditionalGeneration's base-model prefix
_CONFIG_HINT: Final = "pass the config.json that belongs to these weights"


def read_config(path: Path) -> dict[str, Any]:
    """A JSON config file as a dict; ``bad_checkpoint`` when it is missing or not a JSON object."""
    if not path.is_file():
        raise BackendError(ErrorCode.WEIGHTS_MISSING, f"{path}: no such config file", "download or import it")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError(
            ErrorCode.BAD_CHECKPOINT, f"{path}: not a JSON config ({err})", _CONFIG_HINT
        ) from err
    if not isinstance(config, dict):
        raise BackendError(ErrorCode.BAD_CHECKPOINT, f"{path}: not a JSON object", _CONFIG_HINT)
    return config


def _build(factory: Any, config: Mapping[str, Any], source: Path) -> nn.Module:
    """``factory(config)`` on the meta device; a config the class refuses is ``bad_checkpoint``."""
    try:
        with torch.device("meta"):
            return factory(config)
    except (TypeError, ValueError, KeyError) as err:
        raise BackendError(
            ErrorCode.BAD_CHECKPOINT, f"{source}: not a config of this network ({err})", _CONFIG_HINT
        ) from err


def _load_assigned(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    """Strict load that adopts the file's tensors (the meta-device model has no storage of its own)."""
    load_into(model, state, source=str(source), assign=True)


def _finish(model: nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_unet(weights: Path, config: Path, device: torch.device, dtype: torch.dtype = torch.float32) -> Any:
    """The single-step generator: ``UNet2DConditionModel(**musetalk.json)`` with ``unet.pth``."""
    values = read_config(config)
    model = _build(UNet2DConditionModel.from_config, values, config)
    _load_assigned(model, load_state_dict_file(weights), weights)
    return _finish(model, device, dtype)


def _modern_vae_key(key: str) -> str:
    for old, new in VAE_LEGACY_NAMES.items():
        if ".mid_block.attentions." in key and old in key:
            return key.replace(old, new)
    return key


def load_vae(weights: Path, config: Path, device: torch.device, dtype: torch.dtype = torch.float32) -> Any:
    """sd-vae-ft-mse as ``AutoencoderKL``; legacy attention names in the file are renamed to current ones."""
    model = _build(AutoencoderKL.from_config, read_config(config), config)
    state = {_modern_vae_key(key): value for key, value in load_state_dict_file(weights).items()}
    _load_assigned(model, state, weights)
    return _finish(model, device, dtype)


def load_whisper_encoder(
    weights: Path, config: Path, device: torch.device, dtype: torch.dtype = torch.float32
) -> WhisperEncoder:
    """Whisper-tiny's encoder. The whole ``WhisperModel`` is checked against the file (strict), then only
    the encoder is kept: MuseTalk never runs the decoder."""
    values = read_config(config)
    model = _build(lambda c: WhisperModel(WhisperConfig(**c)), values, config)
    state = {
        key.removeprefix(WHISPER_FILE_PREFIX): value
        for key, value in load_state_dict_file(weights).items()
        if key != "proj_out.weight"  # a .bin of WhisperForConditionalGeneration may carry the tied head
    }
    _load_assigned(model, state, weights)
    return _finish(model.encoder, device, dtype)


def load_feature_extractor(config: Path) -> WhisperFeatureExtractor:
    """The stock log-mel front end with the settings of ``preprocessor_config.json``."""
    values = read_config(config)
    try:
        return WhisperFeatureExtractor(**values)
    except (TypeError, ValueError) as err:
        raise BackendError(
            ErrorCode.BAD_CHECKPOINT, f"{config}: not a Whisper preprocessor config ({err})", _CONFIG_HINT
        ) from err
