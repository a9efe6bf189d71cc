"""Dubbing a video portrait with Wav2Lip in bounded memory: decode -> crop -> model -> paste -> encode.

Source frames stream from the kit's `~lipsync_kit.frame_cursor.FrameCursor` in the order the
`~lipsync_kit.timeline.Timeline` gives; a prefetch thread decodes and prepares them while the model
runs on the previous batch, and a sink thread pastes the mouths back and feeds the encoder frame by
frame. Every queue is bounded, so memory holds about ``batch_size + 64`` frames at any length.

Batches are the official ones (``batch_size`` consecutive output frames), so the model sees the same
inputs in the same groups as the official ``datagen`` and the frames are the same. A frame without a
face is written unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from lipsync_kit.frame_cursor import FrameCursor
from lipsync_kit.stages import BackgroundSink, prefetch
from lipsync_kit.timeline import Timeline
from lipsync_kit.video import VideoWriter
from lipsync_kit.video_source import VideoInfo

from .features import window_range
from .pipeline import CropBox, FaceTrack, blend_mask, crop_faces, face_input, paste, to_uint8
from .tracking import CropTrack
from .wav2lip import Wav2Lip

__all__ = ["DubTimes", "dub_video"]

PREFETCH_FRAMES = 32  # prepared frames decoded ahead of the model
SINK_FRAMES = 32  # generated frames waiting for paste and encode

Prepare = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int], None]


@dataclass
class DubTimes:
    """Seconds per stage: the model on the main thread, the waits for decoding, paste + encode busy time."""

    inference: float = 0.0
    decode_wait: float = 0.0
    paste_encode: float = 0.0
    decoders_opened: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Done:
    """One output frame as the model left it: the source frame, its box, the mouth (None: no face)."""

    frame: np.ndarray
    box: CropBox | None
    mouth: np.ndarray | None


def _paster(writer: VideoWriter, mode: str, times: DubTimes) -> Callable[[_Done], None]:
    masks: dict[tuple[int, int], np.ndarray] = {}

    def paste_one(done: _Done) -> None:
        started = time.perf_counter()
        if done.box is None or done.mouth is None:
            writer.write(done.frame)
        else:
            size = (done.box[1] - done.box[0], done.box[3] - done.box[2])
            if mode == "blend" and size not in masks:
                masks[size] = blend_mask(*size)
            writer.write(paste(done.frame, done.mouth, done.box, mode, masks.get(size)))
        times.paste_encode += time.perf_counter() - started

    return paste_one


def dub_video(
    *,
    generator: Wav2Lip,
    device: torch.device,
    video: VideoInfo,
    prepare: Prepare,
    timeline: Timeline,
    track: CropTrack,
    mel: np.ndarray,
    fps: float,
    writer: VideoWriter,
    batch_size: int,
    paste_mode: str,
    progress: ProgressFn | None = None,
) -> DubTimes:
    """Write every output frame of ``timeline`` to ``writer``.

    Args:
        video: the portrait video; ``prepare`` turns each decoded frame into the model's frame
            (``--resize-factor``, ``--rotate``, ``--crop``).
        track: crop box per source frame (``timeline.source_frames`` of them).
        mel: (80, T) Wav2Lip mel spectrogram of the speech; windows are cut batch by batch.
    """
    times = DubTimes()
    total = len(timeline)
    sources = timeline.source_indices()
    with FrameCursor(video) as cursor:
        frames = prefetch(
            (prepare(frame) for frame in cursor.frames(sources)), PREFETCH_FRAMES, name="decode-prepare"
        )
        try:
            with BackgroundSink(_paster(writer, paste_mode, times), SINK_FRAMES, name="paste-encode") as sink:
                for start in range(0, total, batch_size):
                    stop = min(start + batch_size, total)
                    waited = time.perf_counter()
                    batch = [next(frames) for _ in range(stop - start)]
                    times.decode_wait += time.perf_counter() - waited
                    boxes = [track.box(int(s)) for s in sources[start:stop]]
                    started = time.perf_counter()
                    mouths = _generate(generator, device, batch, boxes, mel, fps, start)
                    times.inference += time.perf_counter() - started
                    drawn = iter(mouths if mouths is not None else ())
                    for frame, box in zip(batch, boxes, strict=True):
                        sink.put(_Done(frame, box, None if box is None else next(drawn)))
                    del batch, mouths  # before the next batch is gathered: never two batches at once
                    if progress is not None:
                        progress(stop, total)
        finally:
            frames.close()
        times.decoders_opened = cursor.decoders_opened
    return times


def _generate(
    generator: Wav2Lip,
    device: torch.device,
    frames: list[np.ndarray],
    boxes: list[CropBox | None],
    mel: np.ndarray,
    fps: float,
    first: int,
) -> np.ndarray | None:
    """(F, 96, 96, 3) uint8 mouths for the frames that have a box (None when none has)."""
    keep = [i for i, box in enumerate(boxes) if box is not None]
    if not keep:
        return None
    crops = crop_faces([frames[i] for i in keep], FaceTrack([boxes[i] for i in keep]))  # type: ignore[misc]
    windows = window_range(mel, fps, first, first + len(frames))[keep]
    with torch.inference_mode():
        audio = torch.from_numpy(np.ascontiguousarray(windows[:, None])).to(device)
        faces = torch.from_numpy(face_input(crops)).to(device)
        return to_uint8(generator(audio, faces))
