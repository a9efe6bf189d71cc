"""DWPose (RTMPose-l whole-body) in plain PyTorch: MuseTalk's face landmarks without mmcv or mmpose.

`cspnext` and `rtmcc_head` are the network under mmpose's key names, `topdown` prepares the model input,
`simcc` runs the flip test's merge and the decoding, `model` ties them into `DWPose`::

    from lipsync_musetalk.dwpose import load_dwpose

    dwpose = load_dwpose("dw-ll_ucoco_384.pth", "cuda")
    landmarks = dwpose.landmarks(frame_bgr)  # (68, 2) frame pixels, the whole frame as the box
    many = dwpose.landmarks_batch(frames_bgr)  # (N, 68, 2), frames of one size in batches
"""

from __future__ import annotations

from .keypoints import FACE, FLIP_INDICES
from .model import DWPose, RTMPose, load_dwpose

__all__ = ["FACE", "FLIP_INDICES", "DWPose", "RTMPose", "load_dwpose"]
