"""Face parsing for MuseTalk's blending mask: BiSeNet labels turned into a 0/255 mask (``FaceParsing``).

The crop is resized to 512×512 (PIL bilinear), normalised with the ImageNet mean/std and labelled by
BiSeNet (argmax over 19 classes). The mask modes (``--parsing-mode``):

* ``raw``: skin, mouth and lips (classes 1, 11, 12, 13);
* ``neck``: the same plus the neck (14);
* ``jaw`` (MuseTalk 1.5's default): the skin grown downward by a cone-shaped dilation (so the mask reaches
  below the jaw line), then eroded twice by a flat 35×3 ellipse outside a central band that reaches
  ``left_cheek_width`` / ``right_cheek_width`` pixels (of 512) left and right of the centre; the nose
  (10) is left out, mouth and lips always in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final, Literal

import cv2
import numpy as np
import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from PIL import Image

from .bisenet import BiSeNet

__all__ = [
    "PARSING_MODES",
    "PARSING_SIZE",
    "FaceParser",
    "ParsingMode",
    "cheek_band_mask",
    "jaw_dilation_kernel",
    "load_bisenet",
    "parsing_mask",
]

ParsingMode = Literal["raw", "neck", "jaw"]
PARSING_MODES: Final[tuple[ParsingMode, ...]] = ("raw", "neck", "jaw")
PARSING_SIZE: Final = 512  # BiSeNet input side; the cheek widths are in these pixels
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)

SKIN: Final = 1
NOSE: Final = 10
MOUTH_AND_LIPS: Final = (11, 12, 13)
NECK: Final = 14

CONE_HEIGHT: Final = 21  # rows of the widening part of the jaw dilation kernel
TAIL_HEIGHT: Final = 12  # rows of its constant-width part below the cone
CHEEK_EROSION_SIZE: Final = (35, 3)  # (width, height) of the flat ellipse eroding the cheeks
CHEEK_EROSIONS: Final = 2
DEFAULT_BATCH: Final = 8  # crops per BiSeNet pass
DEFAULT_CHEEK_WIDTH: Final = 90  # MuseTalk 1.5's command-line default (FaceParsing's own default is 80)


def jaw_dilation_kernel() -> np.ndarray:
    """The (33, 33) uint8 0/1 dilation kernel: empty top half, a cone widening 1, 3, …, 21, then 21 wide.

    With the anchor at the centre, dilating by it spreads each skin pixel downward only, up to 21 rows.
    """
    side = CONE_HEIGHT + TAIL_HEIGHT
    centre = side // 2
    kernel = np.zeros((side, side), dtype=np.uint8)
    for row in range(CONE_HEIGHT // 2, side):
        half = min(row, CONE_HEIGHT - 1) - CONE_HEIGHT // 2
        kernel[row, centre - half : centre + half + 1] = 1
    return kernel


def cheek_band_mask(left_cheek_width: int, right_cheek_width: int) -> np.ndarray:
    """(512, 512) uint8: 255 on the cheeks (columns ≤ 256 - left, ≥ 256 + right), 0 in the central band."""
    mask = np.zeros((PARSING_SIZE, PARSING_SIZE), dtype=np.uint8)
    centre = PARSING_SIZE // 2
    mask[:, : max(0, centre - left_cheek_width + 1)] = 255
    mask[:, centre + right_cheek_width :] = 255
    return mask


def parsing_mask(labels: np.ndarray, mode: ParsingMode, cheek_mask: np.ndarray | None = None) -> np.ndarray:
    """The 0/255 uint8 blending mask of a (512, 512) label map for ``mode`` (``cheek_mask`` for ``jaw``)."""
    if mode == "raw":
        keep = np.isin(labels, (SKIN, *MOUTH_AND_LIPS))
    elif mode == "neck":
        keep = np.isin(labels, (SKIN, *MOUTH_AND_LIPS, NECK))
    elif mode == "jaw":
        if cheek_mask is None:
            raise ValueError("jaw mode needs the cheek band mask")
        skin = np.where(labels == SKIN, 255, 0).astype(np.uint8)
        grown = cv2.dilate(skin, jaw_dilation_kernel())
        ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, CHEEK_EROSION_SIZE)
        thinned = cv2.erode(grown, ellipse, iterations=CHEEK_EROSIONS)
        region = np.where(cheek_mask == 255, thinned, grown)
        keep = ((region == 255) & (labels != NOSE)) | np.isin(labels, MOUTH_AND_LIPS)
    else:
        raise ValueError(f"unknown parsing mode {mode!r}; expected one of {', '.join(PARSING_MODES)}")
    return np.where(keep, 255, 0).astype(np.uint8)


class FaceParser:
    """BiSeNet on a device plus MuseTalk's pre- and post-processing.

    Args:
        net: `BiSeNet` with its weights loaded.
        left_cheek_width: half-width (of 512) of the band left of centre that ``jaw`` mode keeps unthinned.
        right_cheek_width: the same right of centre.
        device: where to run; defaults to the device of ``net``'s parameters.
    """

    def __init__(
        self,
        net: BiSeNet,
        left_cheek_width: int = DEFAULT_CHEEK_WIDTH,
        right_cheek_width: int = DEFAULT_CHEEK_WIDTH,
        device: torch.device | str | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(self.device).eval()
        self.cheek_mask = cheek_band_mask(left_cheek_width, right_cheek_width)

    def net_input(self, crop_rgb: Image.Image) -> torch.Tensor:
        """(1, 3, 512, 512) float32: the crop resized bilinearly by PIL, scaled to 0..1 and normalised."""
        resized = np.asarray(crop_rgb.convert("RGB").resize((PARSING_SIZE, PARSING_SIZE), Image.BILINEAR))
        pixels = torch.from_numpy(resized.copy()).permute(2, 0, 1).float().div(255.0)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return ((pixels - mean) / std)[None]

    def labels(self, net_input: torch.Tensor) -> np.ndarray:
        """(B, 3, 512, 512) normalised input -> (B, 512, 512) uint8 class labels."""
        with torch.inference_mode():
            logits = self.net(net_input.to(self.device))
        return logits.argmax(dim=1).to(torch.uint8).cpu().numpy()

    def __call__(self, crop_rgb: Image.Image, mode: ParsingMode = "jaw") -> np.ndarray:
        """The (512, 512) uint8 0/255 mask of an RGB crop."""
        return self.masks([crop_rgb], mode)[0]

    def masks(
        self, crops_rgb: Sequence[Image.Image], mode: ParsingMode = "jaw", batch_size: int = DEFAULT_BATCH
    ) -> list[np.ndarray]:
        """The (512, 512) uint8 0/255 mask of each RGB crop, ``batch_size`` crops per network pass."""
        masks = []
        for start in range(0, len(crops_rgb), batch_size):
            batch = torch.cat([self.net_input(crop) for crop in crops_rgb[start : start + batch_size]])
            masks.extend(parsing_mask(labels, mode, self.cheek_mask) for labels in self.labels(batch))
        return masks


def load_bisenet(path: str | os.PathLike[str], device: torch.device | str) -> BiSeNet:
    """BiSeNet in eval mode on ``device``, loaded strictly from ``79999_iter.pth`` (weights_only).

    Raises:
        lipsync_kit.errors.BackendError: ``weights_missing`` or ``bad_checkpoint``.
    """
    net = BiSeNet()
    load_into(net, load_state_dict_file(path), source=str(path))
    return net.eval().requires_grad_(False).to(device)
