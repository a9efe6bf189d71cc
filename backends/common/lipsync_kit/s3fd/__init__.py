"""S3FD, the face detector of Wav2Lip (and of face-alignment, MuseTalk and SyncNet's pipeline).

`net` is the network under the checkpoint's key names, `boxes` turns its raw outputs into face boxes,
`detector` runs it over many frames in batches. Import from here::

    from lipsync_kit.s3fd import FaceDetector, load_s3fd

    detector = FaceDetector(load_s3fd("s3fd-619a316812.pth", "cuda"))
    boxes = detector.detect(frames_bgr, batch_size=16)  # one Box (x1, y1, x2, y2) or None per frame
"""

from __future__ import annotations

from .boxes import Box, LevelOutputs, best_faces, detect_faces
from .detector import FaceDetector
from .net import S3FD, load_s3fd

__all__ = ["S3FD", "Box", "FaceDetector", "LevelOutputs", "best_faces", "detect_faces", "load_s3fd"]
