"""Build SadTalker's networks and fill them from the official files (strict loading, safe formats only).

* ``SadTalker_V0.0.2_<size>.safetensors``: one flat dict whose keys carry the network as a prefix
  (``kp_extractor.``, ``generator.``, ``audio2exp.``, ``audio2pose.``, ``face_3drecon.``).
* ``mapping_00229-model.pth.tar`` (70 coefficients: crop, extcrop, resize) and
  ``mapping_00109-model.pth.tar`` (73: full, extfull): training containers; the net is under ``mapping``.
* ``detection_Resnet50_Final.pth`` and ``alignment_WFLW_4HG.pth``: see `face_analysis.FaceAnalyzer`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.errors import BackendError, ErrorCode
from torch import Tensor, nn

from .animate import FaceRenderNets
from .audio2exp import Audio2Exp
from .audio2pose import Audio2Pose
from .generator import OcclusionAwareSPADEGenerator
from .keypoint_detector import KPDetector
from .mapping import MappingNet
from .recon_net import ReconNet

__all__ = ["BUNDLE_PREFIXES", "BundleNets", "load_bundle", "load_mapping", "split_bundle"]

BUNDLE_PREFIXES: Final = ("kp_extractor", "generator", "audio2exp", "audio2pose", "face_3drecon")
MAPPING_SECTION: Final = "mapping"


@dataclass(frozen=True)
class BundleNets:
    """The five networks of a ``SadTalker_V0.0.2_<size>.safetensors`` bundle, in eval mode on one device."""

    kp_detector: KPDetector
    generator: OcclusionAwareSPADEGenerator
    audio2exp: Audio2Exp
    audio2pose: Audio2Pose
    recon: ReconNet

    def renderer(self, mapping: MappingNet) -> FaceRenderNets:
        return FaceRenderNets(kp_detector=self.kp_detector, mapping=mapping, generator=self.generator)


def split_bundle(state: Mapping[str, Tensor], source: str) -> dict[str, dict[str, Tensor]]:
    """``{network: state dict}`` from the bundle's prefixed keys; every key must belong to a network."""
    parts: dict[str, dict[str, Tensor]] = {prefix: {} for prefix in BUNDLE_PREFIXES}
    stray = []
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix in parts and rest:
            parts[prefix][rest] = value
        else:
            stray.append(key)
    empty = [prefix for prefix, part in parts.items() if not part]
    if stray or empty:
        found = f"keys of no SadTalker network: {', '.join(stray[:5])}" if stray else ""
        lacking = f"no weights for: {', '.join(empty)}" if empty else ""
        raise BackendError(
            ErrorCode.BAD_CHECKPOINT,
            f"{source}: not a SadTalker bundle ({'; '.join(filter(None, (found, lacking)))})",
            "pass SadTalker_V0.0.2_256.safetensors / _512.safetensors, or a file with the same keys",
        )
    return parts


def _ready(model: nn.Module, device: torch.device) -> nn.Module:
    return model.eval().requires_grad_(False).to(device)


def load_bundle(path: str | os.PathLike[str], device: torch.device) -> BundleNets:
    """The bundle's networks on ``device``; the head-pose estimator is not in it and never needed.

    Raises:
        BackendError: ``weights_missing`` or ``bad_checkpoint``.
    """
    source = str(path)
    parts = split_bundle(load_state_dict_file(Path(path)), source)
    nets: dict[str, nn.Module] = {
        "kp_extractor": KPDetector(),
        "generator": OcclusionAwareSPADEGenerator(),
        "audio2exp": Audio2Exp(),
        "audio2pose": Audio2Pose(),
        "face_3drecon": ReconNet(),
    }
    for prefix, net in nets.items():
        load_into(net, parts[prefix], source=f"{source} [{prefix}]")
        _ready(net, device)
    generator = nets["generator"]
    assert isinstance(generator, OcclusionAwareSPADEGenerator)
    generator.prepare_for_inference()
    return BundleNets(
        kp_detector=nets["kp_extractor"],  # type: ignore[arg-type]
        generator=generator,
        audio2exp=nets["audio2exp"],  # type: ignore[arg-type]
        audio2pose=nets["audio2pose"],  # type: ignore[arg-type]
        recon=nets["face_3drecon"],  # type: ignore[arg-type]
    )


def load_mapping(path: str | os.PathLike[str], coeff_channels: int, device: torch.device) -> MappingNet:
    """MappingNet for 70 (crop modes) or 73 (full modes) coefficient channels.

    Reads the ``mapping`` entry of the official training container, or a bare state dict.
    """
    path = Path(path)
    try:
        state = load_state_dict_file(path, section=MAPPING_SECTION)
    except BackendError as err:
        if err.code != ErrorCode.BAD_CHECKPOINT or f"no {MAPPING_SECTION!r} entry" not in err.message:
            raise
        state = load_state_dict_file(path)
    net = MappingNet(coeff_nc=coeff_channels)
    load_into(net, state, source=str(path))
    return _ready(net, device)  # type: ignore[return-value]
