"""The SadTalker face renderer: ``OcclusionAwareSPADEGenerator`` (facevid2vid with a SPADE decoder).

Pipeline for a source image and keypoint pairs (K = 15 keypoints, image side S = 256 or 512):

1. source encoding (depends on the image only): conv blocks down to S/4, a 1x1 conv to 512 channels
   read as a 32-channel volume of depth 16, six 3-D residual blocks; plus the dense-motion
   network's compressed copy of that volume;
2. per frame: dense motion (deformation field + occlusion map) from the keypoints, trilinear warp of
   the volume, back to 512 then 256 channels at S/4, multiplied by the occlusion map, and the SPADE
   decoder up to S x S.

`encode_source` / `render` expose that split so that a still portrait is encoded once per clip and
frames are rendered in batches; `forward` chains them and equals the official forward (its dict is
`RenderOutput.as_official_dict`; the pre-sigmoid decoder output is `RenderOutput.logits`). Attribute
names reproduce the official ``generator.*`` state-dict keys (386 entries), so the released
checkpoints load with ``strict=True``. This is an independent implementation of the architecture
in github.com/OpenTalker/SadTalker (``src/facerender/modules/generator.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dense_motion import DenseMotionNetwork, expand_batch
from .render_blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .spade import SPADEDecoder, SpectralNormConv2d

__all__ = ["OcclusionAwareSPADEGenerator", "RenderOutput", "SourceEncoding"]


@dataclass(frozen=True)
class SourceEncoding:
    """What the renderer needs from the source image, computed once per clip.

    Attributes:
        volume: (B, 32, 16, S/4, S/4) feature volume after the 3-D residual blocks.
        compressed: (B, 4, 16, S/4, S/4) the dense-motion network's compression of ``volume``.
    """

    volume: Tensor
    compressed: Tensor


@dataclass(frozen=True)
class RenderOutput:
    """Renderer outputs for B frames (S = image side, h = S/4, K = keypoints).

    Attributes:
        prediction: (B, 3, S, S) RGB in [0, 1].
        logits: (B, 3, S, S) the decoder output before the sigmoid.
        mask: (B, K + 1, 16, h, h) dense-motion softmax weights (before the 1e-3 threshold).
        occlusion_map: (B, 1, h, h) in (0, 1).
        deformation: (B, 16, h, h, 3) sampling grid into the source volume.
    """

    prediction: Tensor
    logits: Tensor
    mask: Tensor
    occlusion_map: Tensor
    deformation: Tensor

    def as_official_dict(self) -> dict[str, Tensor]:
        """The official forward's output dict: ``mask``, ``occlusion_map``, ``prediction``."""
        return {"mask": self.mask, "occlusion_map": self.occlusion_map, "prediction": self.prediction}


class OcclusionAwareSPADEGenerator(nn.Module):
    """Face renderer; defaults are the ``generator_params`` of SadTalker's facerender.yaml.

    The same weights serve the 256 and 512 checkpoints' image sizes; the image side must be a
    multiple of 128 (the dense-motion hourglass halves S/4 five times).
    """

    def __init__(
        self,
        image_channel: int = 3,
        feature_channel: int = 32,
        num_kp: int = 15,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
    ) -> None:
        super().__init__()
        # Registration order follows the official state dict (dense motion first).
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=feature_channel, reshape_depth=reshape_depth
        )
        self.first = SameBlock2d(image_channel, block_expansion)
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(widths[i], widths[i + 1]) for i in range(num_down_blocks)
        )
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))
        self.third = SameBlock2d(reshape_channel * reshape_depth, widths[-1], lrelu=True)
        self.fourth = nn.Conv2d(widths[-1], widths[-1], kernel_size=1)
        self.decoder = SPADEDecoder(in_channels=widths[-1])
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        hourglass_levels = len(self.dense_motion_network.hourglass.encoder.down_blocks)
        self.size_multiple = 2 ** (num_down_blocks + hourglass_levels)  # 128: S/4 halved 5 times

    def prepare_for_inference(self) -> OcclusionAwareSPADEGenerator:
        """Eval mode, no gradients, spectral-norm weights computed now (call after loading and moving)."""
        self.eval().requires_grad_(False)
        for module in self.modules():
            if isinstance(module, SpectralNormConv2d):
                _ = module.weight
        return self

    def _check_image(self, image: Tensor) -> None:
        side_ok = all(s % self.size_multiple == 0 for s in image.shape[-2:])
        if image.dim() != 4 or image.shape[1] != self.first.conv.in_channels or not side_ok:
            raise ValueError(
                f"expected a source image (B, {self.first.conv.in_channels}, H, W) with H and W multiples"
                f" of {self.size_multiple}, got {tuple(image.shape)}"
            )

    def encode_source(self, source_image: Tensor) -> SourceEncoding:
        """Source image (B, 3, S, S) in [0, 1] -> its `SourceEncoding` (run once per clip)."""
        self._check_image(source_image)
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        volume = out.unflatten(1, (self.reshape_channel, self.reshape_depth))
        volume = self.resblocks_3d(volume)
        return SourceEncoding(volume=volume, compressed=self.dense_motion_network.compress_source(volume))

    def render(self, encoding: SourceEncoding, kp_source: Tensor, kp_driving: Tensor) -> RenderOutput:
        """Render B frames.

        Args:
            encoding: from `encode_source`, batch 1 (broadcast to B without copying) or B.
            kp_source: (1 or B, K, 3) source keypoints.
            kp_driving: (B, K, 3) driving keypoints.
        """
        batch = kp_driving.shape[0]
        kp_source = expand_batch(kp_source, batch)
        motion = self.dense_motion_network.predict(encoding.compressed, kp_source, kp_driving)
        warped = F.grid_sample(
            expand_batch(encoding.volume, batch),
            motion.deformation,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )  # (B, 32, 16, h, w)
        out = self.fourth(self.third(warped.flatten(1, 2)))
        logits = self.decoder.logits(out * motion.occlusion_map)
        return RenderOutput(
            prediction=torch.sigmoid(logits),
            logits=logits,
            mask=motion.mask,
            occlusion_map=motion.occlusion_map,
            deformation=motion.deformation,
        )

    def forward(self, source_image: Tensor, *, kp_source: Tensor, kp_driving: Tensor) -> RenderOutput:
        """The official forward: `encode_source` then `render` (keypoints by keyword: the official
        positional order is driving, source)."""
        return self.render(self.encode_source(source_image), kp_source, kp_driving)
