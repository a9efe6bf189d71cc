"""The batched S3FD face detector: frames in, boxes out, halving the batch on CUDA out-of-memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from ..errors import BackendError, ErrorCode
from .boxes import SCORE_THRESHOLD, Box, LevelOutputs, best_faces, detect_faces, preprocess
from .net import S3FD

__all__ = ["FaceDetector"]

T = TypeVar("T")


class FaceDetector:
    """A loaded S3FD on a device, detecting faces in batches of BGR frames.

    Args:
        net: S3FD with its weights loaded.
        device: where to run; defaults to the device of ``net``'s parameters.
    """

    def __init__(self, net: S3FD, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else next(net.parameters()).device
        self.net = net.to(self.device).eval()

    def detect(self, frames_bgr: Sequence[np.ndarray], batch_size: int = 16) -> list[Box | None]:
        """Per frame (H, W, 3) uint8 BGR, the official API box, or None where no face scores above 0.5."""
        if not frames_bgr:
            return []
        frame_hw = frames_bgr[0].shape[:2]
        return self._batched(frames_bgr, batch_size, lambda outputs: best_faces(outputs, frame_hw))

    def detect_all(
        self, frames_bgr: Sequence[np.ndarray], batch_size: int = 16, score_threshold: float = SCORE_THRESHOLD
    ) -> list[np.ndarray]:
        """Per frame all detections after NMS, (M, 5) float32 (x1, y1, x2, y2, score), best first."""
        return self._batched(frames_bgr, batch_size, lambda outputs: detect_faces(outputs, score_threshold))

    def _batched(
        self, frames: Sequence[np.ndarray], batch_size: int, post: Callable[[LevelOutputs], list[T]]
    ) -> list[T]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shapes = {(frame.shape, frame.dtype) for frame in frames}
        if len(shapes) > 1 or any(len(s) != 3 or s[2] != 3 or d != np.uint8 for s, d in shapes):
            found = sorted(map(str, shapes))
            raise ValueError(f"frames must all be (H, W, 3) uint8 of one size, got {found}")
        results: list[T] = []
        start = 0
        while start < len(frames):
            batch = np.stack(frames[start : start + batch_size])
            out = self._try_batch(batch, post)
            if out is None:
                # Retry the same frames with half as many at a time; the caches of the failed attempt are
                # released only now that its tensors are gone.
                batch_size = max(1, len(batch) // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            results.extend(out)
            start += len(batch)
        return results

    def _try_batch(self, batch: np.ndarray, post: Callable[[LevelOutputs], list[T]]) -> list[T] | None:
        """``post`` of the network outputs, or None on out-of-memory with more than one frame."""
        try:
            with torch.inference_mode():
                return post(self.net(preprocess(batch, self.device)))
        # Only a real out-of-memory error halves the batch; Wav2Lip treats any RuntimeError so and ends up
        # hiding genuine failures (e.g. illegal memory access, issue #234) behind a batch-size-1 message.
        except torch.cuda.OutOfMemoryError as err:
            if len(batch) > 1:
                return None
            height, width = batch.shape[1:3]
            raise BackendError(
                ErrorCode.OUT_OF_MEMORY,
                f"Out of memory running face detection on one {width}x{height} frame on {self.device}.",
                hint="Downscale the input with --resize-factor (e.g. 2) or run on the CPU with --device cpu; "
                "lowering --face-det-batch-size cannot help, detection already fell back to 1 frame a batch.",
            ) from err
