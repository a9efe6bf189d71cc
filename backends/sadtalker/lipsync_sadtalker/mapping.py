"""SadTalker MappingNet: a 27-frame window of 3DMM coefficients -> head pose, translation, expression.

Matches ``MappingNet`` in the official ``src/facerender/modules/mapping.py``
(github.com/OpenTalker/SadTalker; paper: Zhang et al., "SadTalker", CVPR 2023). The parameter names
equal the checkpoint keys (``mapping_00229-model.pth.tar`` / ``mapping_00109-model.pth.tar``, under
``['mapping']``), so official weights load with ``strict=True``.
"""

from __future__ import annotations

from typing import Final

from torch import Tensor, nn

from .head_pose import NUM_BINS, HeadParams

__all__ = ["COEFF_CHANNELS_CROP", "COEFF_CHANNELS_FULL", "MappingNet"]

COEFF_CHANNELS_CROP: Final = 70  # exp 64 + angle 3 + trans 3 (facerender.yaml, crop/extcrop/resize)
COEFF_CHANNELS_FULL: Final = 73  # + crop scale and offsets (facerender_still.yaml, full/extfull)
DILATION: Final = 3  # each encoder conv (k3, dilation 3) trims 3 steps on either side


class MappingNet(nn.Module):
    """Conv1d encoder over the window, average pool, and five linear heads.

    Args:
        coeff_nc: coefficient channels of the input window (70 or 73).
        descriptor_nc: width of the temporal encoder.
        layers: residual dilated encoder blocks (``encoder0`` …).
        num_kp: keypoints whose expression offsets are predicted.
        num_bins: angle bins of the yaw/pitch/roll heads.
    """

    def __init__(
        self,
        coeff_nc: int = COEFF_CHANNELS_CROP,
        descriptor_nc: int = 1024,
        layers: int = 3,
        num_kp: int = 15,
        num_bins: int = NUM_BINS,
    ) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(coeff_nc, descriptor_nc, kernel_size=7))
        self.layers = layers
        for index in range(layers):
            block = nn.Sequential(
                nn.LeakyReLU(0.1),
                nn.Conv1d(descriptor_nc, descriptor_nc, kernel_size=3, dilation=DILATION),
            )
            self.add_module(f"encoder{index}", block)
        self.pooling = nn.AdaptiveAvgPool1d(1)
        self.fc_roll = nn.Linear(descriptor_nc, num_bins)
        self.fc_pitch = nn.Linear(descriptor_nc, num_bins)
        self.fc_yaw = nn.Linear(descriptor_nc, num_bins)
        self.fc_t = nn.Linear(descriptor_nc, 3)
        self.fc_exp = nn.Linear(descriptor_nc, 3 * num_kp)

    def forward(self, coeffs: Tensor) -> HeadParams:
        """(B, coeff_nc, 27) float32 windows -> head parameters (angle logits, t, exp) per window."""
        out = self.first(coeffs)
        for index in range(self.layers):
            encoder = self.get_submodule(f"encoder{index}")
            out = encoder(out) + out[:, :, DILATION:-DILATION]
        out = self.pooling(out).flatten(1)
        return HeadParams(
            yaw=self.fc_yaw(out),
            pitch=self.fc_pitch(out),
            roll=self.fc_roll(out),
            t=self.fc_t(out),
            exp=self.fc_exp(out),
        )
