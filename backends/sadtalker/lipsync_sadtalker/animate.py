"""The SadTalker face-render loop: source once, then driving keypoints and frames batch by batch.

The equivalent of ``make_animation`` in the official ``src/facerender/modules/make_animation.py``
(github.com/OpenTalker/SadTalker). What depends on the source only (canonical keypoints, posed
source keypoints, the generator's source encoding) is computed once per clip at batch 1 instead of
once per batch row; each frame depends only on its own coefficient window, so frames can be rendered
in any grouping. The head-pose estimator of the official loop is loaded there but never called, and
is not used here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .generator import OcclusionAwareSPADEGenerator, SourceEncoding
from .head_pose import transform_keypoints
from .keypoint_detector import KPDetector
from .mapping import MappingNet
from .render_inputs import DrivingFrames, RenderInputs

__all__ = [
    "FaceRenderNets",
    "PreparedSource",
    "animate",
    "driving_keypoints",
    "prepare_source",
    "render_frames",
]

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class FaceRenderNets:
    """The three networks of the face renderer, loaded, in eval mode and on one device.

    ``mapping`` must match the semantics: 70 channels (crop/extcrop/resize) or 73 (full/extfull).
    """

    kp_detector: KPDetector
    mapping: MappingNet
    generator: OcclusionAwareSPADEGenerator

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device


@dataclass(frozen=True)
class PreparedSource:
    """Per-clip source state (batch 1; broadcast over any number of frames).

    Attributes:
        encoding: the generator's encoding of the source image.
        kp_canonical: (1, K, 3) canonical keypoints from the KPDetector.
        kp_source: (1, K, 3) canonical keypoints posed by the source coefficients.
    """

    encoding: SourceEncoding
    kp_canonical: Tensor
    kp_source: Tensor


@torch.inference_mode()
def prepare_source(nets: FaceRenderNets, source_image: Tensor, source_semantics: Tensor) -> PreparedSource:
    """Encode the source once per clip.

    Args:
        source_image: (1, 3, S, S) float32 in [0, 1].
        source_semantics: (1, C, 27) float32 source coefficients repeated over the window.
    """
    image = source_image.to(nets.device)
    kp_canonical = nets.kp_detector(image)
    kp_source = transform_keypoints(kp_canonical, nets.mapping(source_semantics.to(nets.device)))
    return PreparedSource(nets.generator.encode_source(image), kp_canonical, kp_source)


@torch.inference_mode()
def driving_keypoints(nets: FaceRenderNets, source: PreparedSource, frames: DrivingFrames) -> Tensor:
    """(N, K, 3) driving keypoints: MappingNet on each window, camera overrides, keypoint transform."""
    frames = frames.to(nets.device)
    head = nets.mapping(frames.semantics)
    kp_canonical = source.kp_canonical.expand(len(frames), -1, -1)
    return transform_keypoints(kp_canonical, head, yaw=frames.yaw, pitch=frames.pitch, roll=frames.roll)


@torch.inference_mode()
def render_frames(nets: FaceRenderNets, source: PreparedSource, frames: DrivingFrames) -> Tensor:
    """(N, 3, S, S) float32 frames in [0, 1] on ``nets.device``, one per driving frame, in their order."""
    kp_driving = driving_keypoints(nets, source, frames)
    return nets.generator.render(source.encoding, source.kp_source, kp_driving).prediction


def animate(
    nets: FaceRenderNets,
    inputs: RenderInputs,
    *,
    batch_size: int,
    progress: ProgressFn | None = None,
) -> Iterator[Tensor]:
    """Render a clip in time order, ``batch_size`` frames per generator call.

    Yields:
        (n, 3, S, S) float32 frames in [0, 1] on ``nets.device``, n ≤ batch_size; no padding frames.
        ``progress(done, total)`` is called after each batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    source = prepare_source(nets, inputs.source_image, inputs.source_semantics)
    total = inputs.num_frames
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        yield render_frames(nets, source, inputs.driving.take(torch.arange(start, stop)))
        if progress is not None:
            progress(stop, total)
