"""Face detection for the sync pipeline: S3FD as syncnet_python's ``detectors/s3fd`` runs it.

The layers are those of the kit's S3FD (`lipsync_kit.s3fd`, shared with Wav2Lip). syncnet_python's
``S3FDNet`` runs them differently from face-alignment's:

* network: ``fc6`` is dilated by 6 (padding 6; face-alignment pads by 3 without dilation) and the max-pool
  after ``conv3_3`` rounds up (``ceil_mode``), which matters for odd feature maps (e.g. 180 px high);

* weights: ``sfd_face.pth`` names the layers ``vgg.N``, ``L2Norm3_3``, ``extras.N``, ``loc.N``, ``conf.N``;
  face-alignment's ``s3fd-619a316812.pth`` names them ``conv1_1`` ... ``fc7_mbox_conf``. Either loads.
* input: the frame (RGB) resized by ``scale`` (0.25) with bilinear interpolation, minus the means
  (123, 117, 104) per R, G, B channel (Wav2Lip subtracts 104, 117, 123 from R, G, B);
* output: boxes with a face probability above ``conf_th`` (0.9), NMS at IoU 0.3 and then at 0.1
  (areas without Wav2Lip's "+1"), in the coordinates of the full-size frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.s3fd.net import S3FD, SOURCES, STRIDES
from torch import Tensor, nn

__all__ = ["CONF_THRESHOLD", "DETECT_SCALE", "FaceDetector", "SfdFace", "load_detector", "remap_sfd_face"]

DETECT_SCALE: Final = 0.25  # run_pipeline.py --facedet_scale
CONF_THRESHOLD: Final = 0.9  # inference_video: conf_th
MEANS_RGB: Final = (123.0, 117.0, 104.0)
VARIANCES: Final = (0.1, 0.2)
CANDIDATE_THRESHOLD: Final = 0.05
FIRST_NMS_IOU: Final = 0.3  # inside the network's Detect layer
FINAL_NMS_IOU: Final = 0.1  # detect_faces' nms_
ANCHOR_SIDES: Final = (16, 32, 64, 128, 256, 512)

# sfd_face.pth (syncnet_python S3FDNet) layer name -> face-alignment / lipsync S3FD layer name
_VGG_INDEX: Final = {  # position in S3FDNet.vgg, a ModuleList of convs, ReLUs and pools
    0: "conv1_1", 2: "conv1_2", 5: "conv2_1", 7: "conv2_2", 10: "conv3_1", 12: "conv3_2", 14: "conv3_3",
    17: "conv4_1", 19: "conv4_2", 21: "conv4_3", 24: "conv5_1", 26: "conv5_2", 28: "conv5_3",
    31: "fc6", 33: "fc7",
}  # fmt: skip
_SFD_FACE_NAMES: Final = {
    **{f"vgg.{i}": name for i, name in _VGG_INDEX.items()},
    "L2Norm3_3": "conv3_3_norm",
    "L2Norm4_3": "conv4_3_norm",
    "L2Norm5_3": "conv5_3_norm",
    **{f"extras.{i}": name for i, name in enumerate(("conv6_1", "conv6_2", "conv7_1", "conv7_2"))},
    **{f"loc.{i}": f"{source[0]}_mbox_loc" for i, source in enumerate(SOURCES)},
    **{f"conf.{i}": f"{source[0]}_mbox_conf" for i, source in enumerate(SOURCES)},
}


class SfdFace(S3FD):
    """S3FD with syncnet_python's forward: dilated ``fc6`` and a ceil-mode pool after ``conv3_3``."""

    ceil_pool_stage = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc6 = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)


def remap_sfd_face(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An ``sfd_face.pth`` state dict under the face-alignment names; other layouts pass unchanged."""
    out = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        out[f"{_SFD_FACE_NAMES.get(layer, layer)}.{param}"] = value
    return out


def load_detector(path: str | os.PathLike[str], device: torch.device) -> SfdFace:
    """The detector in eval mode from ``sfd_face.pth`` or ``s3fd-619a316812.pth`` (strict, weights only)."""
    model = SfdFace()
    load_into(model, remap_sfd_face(load_state_dict_file(path)), source=str(path))
    return model.eval().requires_grad_(False).to(device)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS, best score first, areas without "+1"; returns kept indices."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(
            0.0, np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])
        )
        h = np.maximum(
            0.0, np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])
        )
        inter = w * h
        order = rest[inter / (area[best] + area[rest] - inter) <= iou]
    return np.asarray(keep, dtype=np.int64)


class FaceDetector:
    """Batched S3FD detection of BGR frames, with syncnet_python's settings."""

    def __init__(
        self,
        net: SfdFace,
        device: torch.device,
        *,
        scale: float = DETECT_SCALE,
        conf_th: float = CONF_THRESHOLD,
    ) -> None:
        self.net, self.device, self.scale, self.conf_th = net, device, scale, conf_th

    def _priors(self, level_hw: list[tuple[int, int]], height: int, width: int) -> Tensor:
        """(P, 4) float32 priors (cx, cy, w, h) in units of the resized image, level-major, row-major."""
        rows = []
        for (h, w), step, side in zip(level_hw, STRIDES, ANCHOR_SIDES, strict=False):
            i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            cx = (j.ravel() + 0.5) / (width / step)
            cy = (i.ravel() + 0.5) / (height / step)
            rows.append(
                np.stack([cx, cy, np.full_like(cx, side / width), np.full_like(cy, side / height)], axis=1)
            )
        return torch.from_numpy(np.concatenate(rows)).float()

    @torch.inference_mode()
    def detect(self, frames_bgr: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame, (K, 5) float64 rows (x1, y1, x2, y2, score) in full-frame pixels, best first."""
        if not frames_bgr:
            return []
        height, width = frames_bgr[0].shape[:2]
        small = [
            cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (0, 0), fx=self.scale, fy=self.scale)
            for f in frames_bgr
        ]
        x = torch.from_numpy(np.stack(small)).to(self.device).float()
        x = (x - torch.tensor(MEANS_RGB, device=self.device)).permute(0, 3, 1, 2)
        outputs = self.net(x)
        level_hw = [(cls.shape[2], cls.shape[3]) for cls, _ in outputs]
        scores = torch.cat([F.softmax(cls, dim=1)[:, 1].flatten(1) for cls, _ in outputs], dim=1).cpu()
        loc = torch.cat([reg.flatten(2).transpose(1, 2) for _, reg in outputs], dim=1).cpu()
        priors = self._priors(level_hw, x.shape[2], x.shape[3])
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        result = []
        for frame_scores, frame_loc in zip(scores, loc, strict=True):
            index = torch.nonzero(frame_scores > max(self.conf_th, CANDIDATE_THRESHOLD)).squeeze(1)
            p, d = priors[index], frame_loc[index]
            centre = p[:, :2] + d[:, :2] * VARIANCES[0] * p[:, 2:]
            size = p[:, 2:] * torch.exp(d[:, 2:] * VARIANCES[1])
            top_left = centre - size / 2
            boxes = (torch.cat([top_left, size + top_left], dim=1) * scale).double().numpy()
            frame_scores_np = frame_scores[index].double().numpy()
            keep = _nms(boxes, frame_scores_np, FIRST_NMS_IOU)
            boxes, frame_scores_np = boxes[keep], frame_scores_np[keep]
            keep = _nms(boxes, frame_scores_np, FINAL_NMS_IOU)
            result.append(np.concatenate([boxes[keep], frame_scores_np[keep, None]], axis=1))
        return result
