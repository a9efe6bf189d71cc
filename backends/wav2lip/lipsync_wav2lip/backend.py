"""The Wav2Lip backend as the worker loop sees it: models cached per worker, one render per request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lipsync_kit.audio import load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_kit.request import RenderParams, missing_weights
from lipsync_kit.s3fd import FaceDetector, load_s3fd
from lipsync_kit.timing import StageClock
from lipsync_kit.video import VideoWriter, Visual, read_visual
from lipsync_kit.worker import Reporter

from . import __version__
from .face_boxes import pad_and_clip, smooth_boxes
from .features import SAMPLE_RATE, check_speech, frame_windows, melspectrogram, num_frames_for
from .models import load_generator
from .options import OPTIONS
from .pipeline import FaceTrack, blend_mask, crop_faces, face_input, generate, paste, prepare_video_frames
from .wav2lip import Wav2Lip

__all__ = ["RenderOptions", "Wav2LipBackend"]

DEFAULT_STILL_FPS = 25.0


@dataclass(frozen=True)
class RenderOptions(RenderParams):
    """One render request, parsed from the protocol's ``params``."""

    checkpoint: Path
    detector: Path | None
    fps: float | None
    pads: tuple[int, int, int, int]
    box: tuple[int, int, int, int] | None
    nosmooth: bool
    resize_factor: int
    crop: tuple[int, int, int, int]
    rotate: bool
    batch_size: int
    face_det_batch_size: int
    paste: str

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RenderOptions:
        try:
            return cls(
                **RenderParams.common(params),
                **RenderParams.declared(params, OPTIONS),
                checkpoint=RenderParams.weight(params, "checkpoint"),
                detector=RenderParams.weight(params, "detector", required=False),  # none with --box
                fps=params.get("fps"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BackendError(ErrorCode.BAD_OPTION, f"bad render request: {err!r}") from err


class Wav2LipBackend:
    name = "wav2lip"
    version = __version__

    def __init__(self, device: str) -> None:
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self._generators: dict[Path, Wav2Lip] = {}
        self._detectors: dict[Path, FaceDetector] = {}
        self.model_loads = 0

    def capabilities(self) -> dict[str, Any]:
        return {
            "models": ["wav2lip"],
            "formats": ["mp4", "mkv", "png", "stream"],
            "options": [option.name for option in OPTIONS],
        }

    # ------------------------------------------------------------------------------- models

    def _generator(self, path: Path) -> Wav2Lip:
        if path not in self._generators:
            self._generators[path] = load_generator(path, self.torch_device)  # type: ignore[assignment]
            self.model_loads += 1
        return self._generators[path]

    def _detector(self, path: Path | None) -> FaceDetector:
        """The S3FD detector, loaded on first use: a request with ``--box`` never loads one."""
        if path is None:
            raise missing_weights("detector")
        if path not in self._detectors:
            self._detectors[path] = FaceDetector(load_s3fd(path, self.torch_device), self.torch_device)
            self.model_loads += 1
        return self._detectors[path]

    # ------------------------------------------------------------------------------- render

    def _face_track(
        self, frames: list[np.ndarray], opts: RenderOptions, reporter: Reporter
    ) -> tuple[FaceTrack, int]:
        """Crop boxes for every frame, and how many frames had no face of their own."""
        height, width = frames[0].shape[:2]
        if opts.box is not None:
            _y1, y2, _x1, x2 = opts.box
            if y2 > height or x2 > width:
                raise BackendError(
                    ErrorCode.BAD_OPTION, f"--box {opts.box} reaches outside the {width}x{height} frame"
                )
            return FaceTrack([opts.box] * len(frames)), 0
        detector = self._detector(opts.detector)
        reporter.progress("detecting faces", 0, len(frames))
        found = detector.detect(frames, batch_size=opts.face_det_batch_size)
        reporter.progress("detecting faces", len(frames), len(frames))
        hits = [i for i, box in enumerate(found) if box is not None]
        if not hits:
            raise BackendError(
                ErrorCode.NO_FACE,
                f"no face found in {opts.face.name}"
                + (f" ({len(frames)} frames)" if len(frames) > 1 else ""),
                hint="use a clearer frontal portrait, or give the face box with --box TOP BOTTOM LEFT RIGHT",
            )
        missing = len(frames) - len(hits)
        if missing:
            # Official Wav2Lip aborts here; borrow the box of the nearest frame that has one instead.
            reporter.log(
                f"no face in {missing} of {len(frames)} frames; using the nearest detected box", "warning"
            )
            hit_array = np.asarray(hits)
            found = [
                found[i] if found[i] is not None else found[int(hit_array[np.abs(hit_array - i).argmin()])]
                for i in range(len(frames))
            ]
        coords = pad_and_clip(np.asarray(found), opts.pads, (height, width))
        if not opts.nosmooth:
            coords = smooth_boxes(coords)
        if ((coords[:, 1] <= coords[:, 0]) | (coords[:, 3] <= coords[:, 2])).any():
            raise BackendError(
                ErrorCode.NO_FACE,
                f"the face found in {opts.face.name} touches the frame edge and leaves no pixels to crop",
                hint="give the face box with --box TOP BOTTOM LEFT RIGHT",
            )
        return FaceTrack([tuple(int(v) for v in row) for row in coords]), missing  # type: ignore[misc]

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        opts = RenderOptions.from_params(params)
        target = opts.target
        clock = StageClock()
        visual = read_visual(opts.face)
        fps = (opts.fps or DEFAULT_STILL_FPS) if visual.is_still else float(visual.fps or DEFAULT_STILL_FPS)
        # Opening the writer first checks the destination before any heavy work; any failure
        # below leaves the block with an exception, which removes the writer's temp files.
        with VideoWriter(
            target,
            fps=fps,
            audio=opts.audio,
            output_format=opts.format,
            overwrite=opts.overwrite,  # type: ignore[arg-type]
        ) as writer:
            stats = self._render_into(writer, visual, fps, opts, reporter, clock)
        clock.lap("render")
        clock.seconds["encode"] = clock.seconds.pop("render") - clock.seconds["inference"]
        stats["seconds"] = clock.seconds
        return (str(opts.output) if opts.output else None), stats

    def _render_into(
        self,
        writer: VideoWriter,
        visual: Visual,
        fps: float,
        opts: RenderOptions,
        reporter: Reporter,
        clock: StageClock,
    ) -> dict[str, Any]:
        if visual.is_still:
            frames = [visual.frames[0]]
        else:
            if opts.fps:
                reporter.log("--fps applies to still images; the video's own frame rate is used", "warning")
            frames = prepare_video_frames(
                visual.frames, resize_factor=opts.resize_factor, rotate=opts.rotate, crop=opts.crop
            )
        samples = load_audio(opts.audio, SAMPLE_RATE)
        clock.lap("load_inputs")

        check_speech(samples)
        mel = melspectrogram(samples)
        num_frames = num_frames_for(len(samples) / SAMPLE_RATE, fps)
        windows = frame_windows(mel, fps, num_frames)
        frames = frames[:num_frames]
        clock.lap("features")

        generator = self._generator(opts.checkpoint)
        if opts.box is None:
            self._detector(opts.detector)
        clock.lap("model_load")

        track, frames_without_face = self._face_track(frames, opts, reporter)
        clock.lap("detection")

        faces = face_input(crop_faces(frames, track))
        height, width = frames[0].shape[:2]
        masks: dict[tuple[int, int], np.ndarray] = {}
        inference_s = 0.0
        with torch.inference_mode():
            index = 0
            started = time.perf_counter()
            for mouths in generate(
                generator,
                faces,
                windows,
                batch_size=opts.batch_size,
                device=self.torch_device,
                progress=lambda done, total: reporter.progress("lip-syncing", done, total),
            ):
                inference_s += time.perf_counter() - started
                for mouth in mouths:
                    box = track.box_for(index)
                    size = (box[1] - box[0], box[3] - box[2])
                    if opts.paste == "blend" and size not in masks:
                        masks[size] = blend_mask(*size)
                    writer.write(paste(frames[index % len(frames)], mouth, box, opts.paste, masks.get(size)))
                    index += 1
                started = time.perf_counter()
        clock.seconds["inference"] = inference_s

        first = track.box_for(0)
        stats: dict[str, Any] = {
            "frames": num_frames,
            "fps": fps,
            "duration": num_frames / fps,
            "audio_duration": len(samples) / SAMPLE_RATE,
            "width": width,
            "height": height,
            "face_box": {"top": first[0], "bottom": first[1], "left": first[2], "right": first[3]},
            "frames_without_face": frames_without_face,
            "paste": opts.paste,
            "model_loads": self.model_loads,
        }
        return stats
