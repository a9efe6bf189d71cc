"""The Wav2Lip backend as the worker loop sees it: models cached per worker, one render per request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lipsync_kit.audio import load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.errors import BackendError
from lipsync_kit.face_pick import FacePicker, FaceRule
from lipsync_kit.face_track import Detections
from lipsync_kit.protocol import ErrorCode
from lipsync_kit.request import RenderParams, missing_weights
from lipsync_kit.resources import peak_rss_mb
from lipsync_kit.s3fd import FaceDetector, load_s3fd
from lipsync_kit.timeline import Timeline
from lipsync_kit.timing import StageClock
from lipsync_kit.video import VideoWriter, open_portrait
from lipsync_kit.video_source import DEFAULT_COLOUR, VideoInfo, VideoSource, count_frames
from lipsync_kit.worker import Reporter

from . import __version__
from .dubbing import dub_video
from .face_boxes import pad_and_clip, smooth_boxes
from .features import SAMPLE_RATE, check_speech, frame_windows, melspectrogram, num_frames_for
from .models import load_generator
from .options import OPTIONS
from .pipeline import FaceTrack, blend_mask, crop_faces, face_input, generate, paste, prepare_frame
from .tracking import CropTrack, crop_track, fixed_track
from .video_faces import video_detections
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
    duration_mode: str
    detect_scale: float
    face_index: int | None
    face_at: tuple[float, ...] | None
    cache_dir: Path | None

    @property
    def face_rule(self) -> FaceRule | None:
        """``--face-index`` / ``--face-at``, or None for the official choice (the most confident face)."""
        if self.face_index is None and self.face_at is None:
            return None
        if self.face_index is not None and self.face_at is not None:
            raise BackendError(ErrorCode.BAD_OPTION, "give --face-index or --face-at, not both")
        if self.face_at is not None and len(self.face_at) != 2:
            raise BackendError(ErrorCode.BAD_OPTION, f"--face-at must be X,Y, got {list(self.face_at)}")
        point = (self.face_at[0], self.face_at[1]) if self.face_at is not None else None
        return FaceRule(index=self.face_index, point=point)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RenderOptions:
        try:
            return cls(
                **RenderParams.common(params),
                **RenderParams.declared(params, OPTIONS),
                checkpoint=RenderParams.weight(params, "checkpoint"),
                detector=RenderParams.weight(params, "detector", required=False),  # none with --box
                fps=params.get("fps"),
                cache_dir=Path(params["cache_dir"]) if params.get("cache_dir") else None,
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

    def _still_box(self, frame: np.ndarray, opts: RenderOptions, reporter: Reporter) -> FaceTrack:
        """The crop box of a still portrait: ``--box``, or the detected face (none is ``no_face``)."""
        height, width = frame.shape[:2]
        if opts.box is not None:
            self._check_box(opts.box, width, height)
            return FaceTrack([opts.box])
        detector = self._detector(opts.detector)
        reporter.progress("detecting faces", 0, 1)
        if (rule := opts.face_rule) is not None:
            found = [FacePicker(rule).choose(frame, detector.detect_all([frame])[0], cut=False)]
        else:
            found = detector.detect([frame], batch_size=opts.face_det_batch_size)
        reporter.progress("detecting faces", 1, 1)
        if found[0] is None:
            raise BackendError(
                ErrorCode.NO_FACE,
                f"no face found in {opts.face.name}",
                hint="use a clearer frontal portrait, or give the face box with --box TOP BOTTOM LEFT RIGHT",
            )
        coords = pad_and_clip(np.asarray(found), opts.pads, (height, width))
        if not opts.nosmooth:
            coords = smooth_boxes(coords)  # one row: the official smoothing leaves it as it is
        if ((coords[:, 1] <= coords[:, 0]) | (coords[:, 3] <= coords[:, 2])).any():
            raise BackendError(
                ErrorCode.NO_FACE,
                f"the face found in {opts.face.name} touches the frame edge and leaves no pixels to crop",
                hint="give the face box with --box TOP BOTTOM LEFT RIGHT",
            )
        return FaceTrack([tuple(int(v) for v in coords[0])])  # type: ignore[list-item]

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        opts = RenderOptions.from_params(params)
        clock = StageClock()
        portrait = open_portrait(opts.face)
        if portrait.video is not None:
            fps = float(portrait.video.fps or DEFAULT_STILL_FPS)
            if opts.fps:
                reporter.log("--fps applies to still images; the video's own frame rate is used", "warning")
        else:
            fps = opts.fps or DEFAULT_STILL_FPS
        # Opening the writer first checks the destination before any heavy work; any failure
        # below leaves the block with an exception, which removes the writer's temp files.
        with VideoWriter(
            opts.target,
            fps=fps,
            audio=opts.audio,
            output_format=opts.format,
            overwrite=opts.overwrite,  # type: ignore[arg-type]
            colour=portrait.video.colour if portrait.video is not None else DEFAULT_COLOUR,
        ) as writer:
            if portrait.video is not None:
                stats = self._dub_video(writer, portrait.video, fps, opts, reporter, clock)
            else:
                assert portrait.still is not None
                stats = self._render_still(writer, portrait.still, fps, opts, reporter, clock)
        clock.lap("render")
        clock.seconds["encode"] = clock.seconds.pop("render") - clock.seconds["inference"]
        stats["seconds"] = clock.seconds
        stats["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return (str(opts.output) if opts.output else None), stats

    def _dub_video(
        self,
        writer: VideoWriter,
        video: VideoInfo,
        fps: float,
        opts: RenderOptions,
        reporter: Reporter,
        clock: StageClock,
    ) -> dict[str, Any]:
        """A video portrait through the streaming engine (`dubbing.dub_video`)."""
        prepare = partial(prepare_frame, resize_factor=opts.resize_factor, rotate=opts.rotate, crop=opts.crop)
        with VideoSource(video, max_frames=1) as source:
            height, width = prepare(next(source)).shape[:2]
        samples = load_audio(opts.audio, SAMPLE_RATE)
        audio_duration = len(samples) / SAMPLE_RATE
        clock.lap("load_inputs")

        check_speech(samples)
        mel = melspectrogram(samples)
        del samples
        speech_frames = num_frames_for(audio_duration, fps)
        clock.lap("features")

        generator = self._generator(opts.checkpoint)
        clock.lap("model_load")

        scene_cuts = 0
        if opts.box is not None:
            self._check_box(opts.box, width, height)
            track = fixed_track(opts.box, count_frames(video, speech_frames))
            detection = "box"
        else:
            found, detection = video_detections(
                video, prepare, speech_frames, opts, lambda: self._detector(opts.detector), reporter
            )
            scene_cuts = int(found.cuts.sum())
            track = self._video_track(found, opts, (height, width))
        clock.lap("detection")

        timeline = Timeline(opts.duration_mode, len(track.has_face), speech_frames)  # type: ignore[arg-type]
        if len(timeline) < speech_frames:  # cut: the speech ends with the video
            writer.max_seconds = len(timeline) / fps
        times = dub_video(
            generator=generator,
            device=self.torch_device,
            video=video,
            prepare=prepare,
            timeline=timeline,
            track=track,
            mel=mel,
            fps=fps,
            writer=writer,
            batch_size=opts.batch_size,
            paste_mode=opts.paste,
            progress=lambda done, total: reporter.progress("lip-syncing", done, total),
        )
        clock.seconds["inference"] = times.inference
        clock.seconds["decode_wait"] = times.decode_wait
        clock.seconds["paste_encode"] = times.paste_encode
        sources = timeline.source_indices()
        first = next((track.box(int(i)) for i in sources if track.has_face[i]), None)
        return {
            "frames": len(timeline),
            "fps": fps,
            "duration": len(timeline) / fps,
            "audio_duration": audio_duration,
            "width": width,
            "height": height,
            "face_box": _box_record(first),
            "frames_without_face": int((~track.has_face[sources]).sum()),
            "source_frames": len(track.has_face),
            "duration_mode": opts.duration_mode,
            "detection": detection,
            "scene_cuts": scene_cuts,
            "paste": opts.paste,
            "model_loads": self.model_loads,
        }

    @staticmethod
    def _check_box(box: tuple[int, int, int, int], width: int, height: int) -> None:
        _y1, y2, _x1, x2 = box
        if y2 > height or x2 > width:
            raise BackendError(
                ErrorCode.BAD_OPTION, f"--box {box} reaches outside the {width}x{height} frame"
            )

    def _video_track(self, found: Detections, opts: RenderOptions, frame_hw: tuple[int, int]) -> CropTrack:
        no_face_hint = "use a clearer frontal portrait, or give the face box with --box TOP BOTTOM LEFT RIGHT"
        if not found.found.any():
            raise BackendError(
                ErrorCode.NO_FACE, f"no face found in {opts.face.name} ({len(found)} frames)", no_face_hint
            )
        track = crop_track(found, opts.pads, frame_hw, smooth=not opts.nosmooth)
        if not track.has_face.any():
            raise BackendError(
                ErrorCode.NO_FACE,
                f"the face found in {opts.face.name} touches the frame edge and leaves no pixels to crop",
                hint="give the face box with --box TOP BOTTOM LEFT RIGHT",
            )
        return track

    def _render_still(
        self,
        writer: VideoWriter,
        frame: np.ndarray,
        fps: float,
        opts: RenderOptions,
        reporter: Reporter,
        clock: StageClock,
    ) -> dict[str, Any]:
        """A still portrait: its face is encoded once, every frame is the picture with a new mouth."""
        samples = load_audio(opts.audio, SAMPLE_RATE)
        clock.lap("load_inputs")

        check_speech(samples)
        mel = melspectrogram(samples)
        num_frames = num_frames_for(len(samples) / SAMPLE_RATE, fps)
        windows = frame_windows(mel, fps, num_frames)
        clock.lap("features")

        generator = self._generator(opts.checkpoint)
        if opts.box is None:
            self._detector(opts.detector)
        clock.lap("model_load")

        track = self._still_box(frame, opts, reporter)
        clock.lap("detection")

        faces = face_input(crop_faces([frame], track))
        box = track.box_for(0)
        size = (box[1] - box[0], box[3] - box[2])
        mask = blend_mask(*size) if opts.paste == "blend" else None
        inference_s = 0.0
        with torch.inference_mode():
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
                    writer.write(paste(frame, mouth, box, opts.paste, mask))
                started = time.perf_counter()
        clock.seconds["inference"] = inference_s

        height, width = frame.shape[:2]
        return {
            "frames": num_frames,
            "fps": fps,
            "duration": num_frames / fps,
            "audio_duration": len(samples) / SAMPLE_RATE,
            "width": width,
            "height": height,
            "face_box": _box_record(box),
            "frames_without_face": 0,
            "paste": opts.paste,
            "model_loads": self.model_loads,
        }


def _box_record(box: tuple[int, int, int, int] | None) -> dict[str, int] | None:
    if box is None:
        return None
    return {"top": box[0], "bottom": box[1], "left": box[2], "right": box[3]}
