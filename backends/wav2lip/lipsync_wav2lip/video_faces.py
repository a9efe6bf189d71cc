"""The faces of a video portrait for Wav2Lip: from the detection cache, or one streaming S3FD pass.

Only the frames the render uses are detected (the first ``speech_frames``, as the official code trims
its frame list to the mel chunks before detecting). The cache key covers the video's bytes, the
detector weights and every option that changes the frames the detector sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from lipsync_kit.detection_cache import DetectionCache, file_digest
from lipsync_kit.face_pick import FacePicker
from lipsync_kit.face_track import Detections, detect_frames, downscaled
from lipsync_kit.s3fd import FaceDetector
from lipsync_kit.stages import prefetch
from lipsync_kit.video_source import VideoInfo, VideoSource
from lipsync_kit.worker import Reporter

if TYPE_CHECKING:
    from .backend import RenderOptions

__all__ = ["video_detections"]

PREFETCH_FRAMES: Final = 32  # decoded and prepared frames waiting for the detector
CACHE_FOLDER: Final = "detections"


def _cache_settings(video: VideoInfo, opts: RenderOptions) -> dict[str, object]:
    return {
        "detector": file_digest(opts.detector) if opts.detector is not None else None,
        "resize_factor": opts.resize_factor,
        "rotate": opts.rotate,
        "crop": list(opts.crop),
        "detect_scale": opts.detect_scale,
        "face_index": opts.face_index,
        "face_at": list(opts.face_at) if opts.face_at is not None else None,
        "fps": str(video.fps),
    }


def video_detections(
    video: VideoInfo,
    prepare: Callable[[np.ndarray], np.ndarray],
    speech_frames: int,
    opts: RenderOptions,
    detector: Callable[[], FaceDetector],
    reporter: Reporter,
) -> tuple[Detections, Literal["cache", "detected"]]:
    """Detections of the first ``speech_frames`` source frames, and where they came from.

    ``detector`` loads the S3FD model; it is not called on a cache hit.
    """
    cache = DetectionCache(opts.cache_dir / CACHE_FOLDER if opts.cache_dir is not None else None)
    key = cache.key(opts.face, _cache_settings(video, opts)) if cache.folder is not None else None
    if key is not None and (hit := cache.load(key, speech_frames)) is not None:
        reporter.log(f"face detections of {opts.face.name} reused from the cache", "info")
        return hit, "cache"

    rule = opts.face_rule  # checked before the model loads: a bad --face-at fails at once
    model = detector()
    if rule is None:  # the official choice: the most confident face of each frame
        detect = downscaled(lambda frames: model.detect(frames, opts.face_det_batch_size), opts.detect_scale)
    else:
        detect = downscaled(
            lambda frames: model.detect_all(frames, opts.face_det_batch_size), opts.detect_scale
        )
    reporter.progress("detecting faces", 0, speech_frames)
    with VideoSource(video, max_frames=speech_frames) as source:
        frames = prefetch((prepare(frame) for frame in source), PREFETCH_FRAMES, name="detect-prepare")
        try:
            found = detect_frames(
                frames,
                detect,
                batch_size=opts.face_det_batch_size,
                expected=speech_frames,
                progress=lambda done: reporter.progress("detecting faces", done, speech_frames),
                picker=FacePicker(rule) if rule is not None else None,
            )
        finally:
            frames.close()
    if key is not None:
        cache.save(key, found)
    return found, "detected"
