"""DWPose (RTMPose-l, COCO-WholeBody) as MuseTalk runs it: landmarks of the whole frame, flip test on.

MuseTalk's ``get_landmark_and_bbox`` calls mmpose's ``inference_topdown`` without a person box, so the
whole frame is warped onto the model input; the network runs on that input and on its mirror image, the
two SimCC outputs are averaged, decoded, and mapped back to frame pixels. Keypoints 23..90 are the 68 face
landmarks. The file ``dw-ll_ucoco_384.pth`` is an mmengine checkpoint with the weights under
``state_dict``, keyed ``backbone.*`` and ``head.*`` exactly as `RTMPose` names its parameters; whatever
else the file holds (meta with numpy arrays, mmengine's message hub) is read inert and dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

import numpy as np
import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from torch import Tensor, nn

from .cspnext import CSPNeXt
from .keypoints import FACE, NUM_KEYPOINTS
from .rtmcc_head import RTMCCHead
from .simcc import decode, merge_flip_test
from .topdown import box_frame, normalise, warp_matrix, warp_to_input

__all__ = ["DWPose", "RTMPose", "load_dwpose"]

DEFAULT_BATCH: Final = 8  # frames per forward (each also runs mirrored, so 16 network inputs)


class RTMPose(nn.Module):
    """CSPNeXt + RTMCC head: normalised (B, 3, 384, 288) -> SimCC x (B, 133, 576) and y (B, 133, 768)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = CSPNeXt()
        self.head = RTMCCHead()

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.backbone(inputs))

    def flip_test(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The average of the logits of ``inputs`` and of their mirror images, flipped back."""
        n = len(inputs)
        x, y = self(torch.cat([inputs, inputs.flip(-1)]))
        return merge_flip_test(x[:n], y[:n], x[n:], y[n:])


class DWPose:
    """A loaded RTMPose-l on a device, giving whole-frame keypoints the way MuseTalk asks for them.

    Args:
        net: `RTMPose` with its weights loaded.
        device: where to run; defaults to the device of ``net``'s parameters.
    """

    def __init__(self, net: RTMPose, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(self.device).eval()

    def keypoints(
        self,
        frames_bgr: Sequence[np.ndarray],
        box_xyxy: Sequence[float] | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All 133 keypoints of each frame.

        Args:
            frames_bgr: (H, W, 3) uint8 BGR frames, all of one size.
            box_xyxy: the person box (x1, y1, x2, y2) for every frame; MuseTalk gives none, so the whole
                frame is the box.
            batch_size: frames per forward pass.

        Returns:
            keypoints (N, 133, 2) float64 in frame pixels (x, y) and scores (N, 133) float32.
        """
        if not len(frames_bgr):
            return np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS), np.float32)
        if len({f.shape for f in frames_bgr}) > 1 or frames_bgr[0].ndim != 3 or frames_bgr[0].shape[2] != 3:
            found = sorted({str(f.shape) for f in frames_bgr})
            raise ValueError(f"frames must all be (H, W, 3) BGR of one size, got {', '.join(found)}")
        height, width = frames_bgr[0].shape[:2]
        frame = box_frame(np.asarray(box_xyxy if box_xyxy is not None else (0, 0, width, height)))
        matrix = warp_matrix(frame)
        points, scores = [], []
        for start in range(0, len(frames_bgr), batch_size):
            warped = np.stack([warp_to_input(f, matrix) for f in frames_bgr[start : start + batch_size]])
            with torch.inference_mode():
                simcc_x, simcc_y = self.net.flip_test(normalise(warped, self.device))
            batch_points, batch_scores = decode(simcc_x.float().cpu().numpy(), simcc_y.float().cpu().numpy())
            points.append(frame.to_frame(batch_points))
            scores.append(batch_scores)
        return np.concatenate(points), np.concatenate(scores)

    def landmarks(self, frame_bgr: np.ndarray, box_xyxy: Sequence[float] | None = None) -> np.ndarray:
        """The 68 face landmarks (iBUG order) of one frame: (68, 2) float64 frame pixels, not rounded."""
        return self.keypoints([frame_bgr], box_xyxy)[0][0, FACE]

    def landmarks_batch(
        self, frames_bgr: Sequence[np.ndarray], batch_size: int = DEFAULT_BATCH
    ) -> np.ndarray:
        """`landmarks` of many frames of one size, whole frame as the box: (N, 68, 2)."""
        return self.keypoints(frames_bgr, batch_size=batch_size)[0][:, FACE]


def load_dwpose(path: str | os.PathLike[str], device: torch.device | str) -> DWPose:
    """DWPose in eval mode on ``device``, loaded strictly from ``dw-ll_ucoco_384.pth`` (weights_only).

    Raises:
        lipsync_kit.errors.BackendError: ``weights_missing`` or ``bad_checkpoint``.
    """
    net = RTMPose()
    # An mmengine training checkpoint: meta (numpy arrays), message hub and optimizer state beside weights.
    load_into(net, load_state_dict_file(path, training_checkpoint=True), source=str(path))
    return DWPose(net.eval().requires_grad_(False), device)
