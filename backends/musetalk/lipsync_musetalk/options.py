"""The options of the MuseTalk backend: the host builds its flags and checks from this table.

The render options carry the official ``scripts/inference.py`` meanings and defaults (v1.5, normal mode).
"""

from __future__ import annotations

from typing import Final

from lipsync_kit.options import Option, duration_mode_option

__all__ = ["OPTIONS", "WEIGHT_OPTIONS"]


def _own_file(name: str, what: str) -> Option:
    return Option(name, "path", None, what, nullable=True, target="request")


WEIGHT_OPTIONS: Final[tuple[Option, ...]] = (
    _own_file("checkpoint", "Your own UNet weights, in the format of MuseTalk 1.5's unet.pth."),
    _own_file("unet_config", "The UNet config that goes with --checkpoint (musetalk.json)."),
    _own_file("vae_checkpoint", "Your own VAE weights (sd-vae-ft-mse diffusion_pytorch_model.safetensors)."),
    _own_file("vae_config", "The VAE config (sd-vae-ft-mse config.json)."),
    _own_file("whisper_checkpoint", "Your own Whisper-tiny weights (model.safetensors)."),
    _own_file("whisper_config", "The Whisper config (whisper-tiny config.json)."),
    _own_file("whisper_preprocessor", "The Whisper feature-extractor config (preprocessor_config.json)."),
    _own_file("pose_checkpoint", "Your own DWPose landmark weights (dw-ll_ucoco_384.pth)."),
    _own_file("parsing_checkpoint", "MuseTalk: your own BiSeNet face-parsing weights (79999_iter.pth)."),
    _own_file("detector_checkpoint", "Your own S3FD face-detector weights."),
)

OPTIONS: Final[tuple[Option, ...]] = (
    *WEIGHT_OPTIONS,
    Option(
        "extra_margin",
        "int",
        10,
        "Pixels added below the chin to the face box (MuseTalk 1.5).",
        minimum=0,
        maximum=256,
    ),
    Option(
        "parsing_mode",
        "choice",
        "jaw",
        "Blending mask from face parsing: jaw (v1.5 default: skin around the mouth and jaw), raw (skin and"
        " lips), neck (raw plus the neck).",
        choices=("jaw", "raw", "neck"),
    ),
    Option(
        "left_cheek_width",
        "int",
        90,
        "jaw mode: width in px (of the 512 px parsing crop) of the band left of centre kept from erosion.",
        minimum=0,
        maximum=256,
    ),
    Option(
        "right_cheek_width",
        "int",
        90,
        "jaw mode: width in px (of the 512 px parsing crop) of the band right of centre kept from erosion.",
        minimum=0,
        maximum=256,
    ),
    Option(
        "bbox_shift",
        "int",
        0,
        "Accepted for compatibility with MuseTalk 1.0 scripts; MuseTalk 1.5 ignores it (the official code"
        " forces 0).",
    ),
    Option(
        "precision",
        "choice",
        "fp32",
        "fp32, or fp16 for the UNet, VAE and Whisper (CUDA only; the official realtime mode always uses"
        " fp16).",
        choices=("fp32", "fp16"),
    ),
    Option("batch_size", "int", 8, "Frames per UNet and VAE call.", minimum=1),
    duration_mode_option("pingpong"),  # official MuseTalk: frames + frames[::-1], cycled
)
