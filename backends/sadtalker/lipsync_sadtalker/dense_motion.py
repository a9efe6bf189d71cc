"""Dense motion network of the SadTalker face renderer (facevid2vid, keypoints without Jacobians).

From the source feature volume and two keypoint sets it predicts, on the volume's (D, H, W) grid,
a backward deformation field (where each driving voxel samples the source volume) and a 2-D
occlusion map. Attribute names reproduce the official ``dense_motion_network.*`` state-dict keys.

The only part that depends on the source image alone, `compress`, is split out so that a still
portrait runs it once per clip; `predict` then takes a batch of keypoint pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .render_blocks import Hourglass3d, coordinate_grid_3d, gaussian_heatmaps

__all__ = ["DenseMotion", "DenseMotionNetwork", "expand_batch"]

KP_VARIANCE: Final = 0.01  # variance of the keypoint Gaussians on the [-1, 1] grid
MASK_THRESHOLD: Final = 1e-3  # softmax weights below this are zeroed (without renormalising)


@dataclass(frozen=True)
class DenseMotion:
    """Dense-motion outputs for a batch of B keypoint pairs on a (D, H, W) grid with K keypoints.

    Attributes:
        mask: (B, K + 1, D, H, W) softmax weights of the background and keypoint motions, before
            the threshold (what the official network reports as ``mask``).
        deformation: (B, D, H, W, 3) sampling grid into the source volume, (x, y, z) in [-1, 1].
        occlusion_map: (B, 1, H, W) in (0, 1).
    """

    mask: Tensor
    deformation: Tensor
    occlusion_map: Tensor


def expand_batch(x: Tensor, batch: int) -> Tensor:
    """``x`` with batch size ``batch``: unchanged if it already has it, a view if it has 1."""
    if x.shape[0] == batch:
        return x
    if x.shape[0] != 1:
        raise ValueError(f"cannot broadcast a batch of {x.shape[0]} to {batch}")
    return x.expand(batch, *x.shape[1:])


class DenseMotionNetwork(nn.Module):
    """Keypoint-driven motion field and occlusion map (facerender.yaml ``dense_motion_params``).

    Args:
        block_expansion, num_blocks, max_features: hourglass layout (32, 5, 1024 in SadTalker).
        num_kp: keypoints K (15).
        feature_channel: channels of the source volume (32).
        reshape_depth: depth D of the source volume (16); the occlusion conv sees D x hourglass width.
        compress: channels the source volume is compressed to before warping (4).
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = 15,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
    ) -> None:
        super().__init__()
        in_features = (num_kp + 1) * (compress + 1)  # per motion: 1 heatmap + `compress` warped channels
        self.hourglass = Hourglass3d(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp

    def compress_source(self, volume: Tensor) -> Tensor:
        """(B, feature_channel, D, H, W) source volume -> (B, compress, D, H, W); per clip, not per frame."""
        return F.relu(self.norm(self.compress(volume)))

    def sparse_motions(self, grid: Tensor, kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """(B, K + 1, D, H, W, 3): the identity (background) then, per keypoint, grid - driving + source."""
        batch = kp_driving.shape[0]
        # (grid - driving) + source, in this order (the official rounding).
        per_kp = (grid - kp_driving[:, :, None, None, None, :]) + kp_source[:, :, None, None, None, :]
        identity = grid.expand(batch, 1, *grid.shape)
        return torch.cat((identity, per_kp), dim=1)

    def predict(self, compressed: Tensor, kp_source: Tensor, kp_driving: Tensor) -> DenseMotion:
        """Motion for a batch of keypoint pairs.

        Args:
            compressed: (1 or B, compress, D, H, W) from `compress_source`; batch 1 is broadcast.
            kp_source: (B, K, 3) source keypoints in [-1, 1] grid coordinates.
            kp_driving: (B, K, 3) driving keypoints.
        """
        batch = kp_driving.shape[0]
        compressed = expand_batch(compressed, batch)
        depth, height, width = compressed.shape[2:]
        grid = coordinate_grid_3d(depth, height, width, device=compressed.device, dtype=compressed.dtype)
        motions = self.sparse_motions(grid, kp_source, kp_driving)
        motion_count = motions.shape[1]

        # Warp the compressed volume once per motion: stacking the motions along the grid's depth
        # samples every motion in one call without copying the volume per motion.
        warped = F.grid_sample(
            compressed, motions.flatten(1, 2), mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (B, compress, (K + 1) * D, H, W)
        warped = warped.unflatten(2, (motion_count, depth)).transpose(1, 2)  # (B, K + 1, compress, D, H, W)

        heatmaps = gaussian_heatmaps(kp_driving, grid, KP_VARIANCE) - gaussian_heatmaps(
            kp_source, grid, KP_VARIANCE
        )  # (B, K, D, H, W)
        background = heatmaps.new_zeros(batch, 1, depth, height, width)
        heatmaps = torch.cat((background, heatmaps), dim=1)

        hourglass_input = torch.cat((heatmaps.unsqueeze(2), warped), dim=2).flatten(1, 2)
        features = self.hourglass(hourglass_input)  # (B, C, D, H, W)

        mask = F.softmax(self.mask(features), dim=1)
        weights = torch.where(mask < MASK_THRESHOLD, torch.zeros_like(mask), mask)
        deformation = (motions * weights.unsqueeze(-1)).sum(dim=1)
        occlusion_map = torch.sigmoid(self.occlusion(features.flatten(1, 2)))
        return DenseMotion(mask=mask, deformation=deformation, occlusion_map=occlusion_map)

    def forward(self, volume: Tensor, kp_source: Tensor, kp_driving: Tensor) -> DenseMotion:
        """The official forward: compress the source volume, then `predict`."""
        return self.predict(self.compress_source(volume), kp_source, kp_driving)
