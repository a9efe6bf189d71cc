"""The MuseTalk backend as the worker loop sees it: networks cached per worker, one render per request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from lipsync_kit.audio import check_speech, load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_kit.request import RenderParams
from lipsync_kit.s3fd import FaceDetector, load_s3fd
from lipsync_kit.timeline import Timeline
from lipsync_kit.timing import StageClock
from lipsync_kit.video import VideoWriter, Visual, read_visual
from lipsync_kit.worker import Reporter

from . import __version__
from .audio import (
    SAMPLE_RATE,
    AudioWindows,
    WindowPlan,
    encode_speech,
    min_speech_samples,
    plan_windows,
    speech_features,
)
from .dwpose import load_dwpose
from .face_box import detect_face_boxes
from .models import load_feature_extractor, load_unet, load_vae, load_whisper_encoder
from .options import OPTIONS
from .parsing import FaceParser, load_bisenet
from .pipeline import Networks, prepare_sources, render_frames

__all__ = ["MuseTalkBackend", "RenderOptions"]

DEFAULT_STILL_FPS: Final = 25.0  # MuseTalk's training frame rate, the official --fps default
DTYPES: Final = {"fp32": torch.float32, "fp16": torch.float16}

# weight role -> request option naming a user's own file (the host sends every role under ``weights``)
ROLES: Final = (
    "unet",
    "unet_config",
    "vae",
    "vae_config",
    "whisper",
    "whisper_config",
    "whisper_preprocessor",
    "pose",
    "parser",
    "detector",
)


@dataclass(frozen=True)
class RenderOptions(RenderParams):
    """One render request, parsed from the protocol's ``params``."""

    weights: dict[str, Path]
    fps: float | None
    extra_margin: int
    parsing_mode: str
    left_cheek_width: int
    right_cheek_width: int
    bbox_shift: int
    precision: str
    batch_size: int
    duration_mode: str

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RenderOptions:
        declared = RenderParams.declared(params, OPTIONS)
        try:
            return cls(
                **RenderParams.common(params),
                **declared,
                weights={role: RenderParams.weight(params, role) for role in ROLES},
                fps=params.get("fps"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BackendError(ErrorCode.BAD_OPTION, f"bad render request: {err!r}") from err


class MuseTalkBackend:
    name = "musetalk"
    version = __version__

    def __init__(self, device: str) -> None:
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self._cache: dict[tuple[Any, ...], Any] = {}
        self.model_loads = 0

    def capabilities(self) -> dict[str, Any]:
        return {
            "models": ["musetalk"],
            "formats": ["mp4", "mkv", "png", "stream"],
            "options": [option.name for option in OPTIONS],
        }

    # ------------------------------------------------------------------------------- models

    def _cached(self, key: tuple[Any, ...], load: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
            self.model_loads += 1
        return self._cache[key]

    def _dtype(self, precision: str) -> torch.dtype:
        if precision == "fp16" and self.torch_device.type != "cuda":
            raise BackendError(
                ErrorCode.BAD_OPTION,
                f"--precision fp16 needs a CUDA device; this render runs on {self.device}",
                hint="use --precision fp32 (the default), or --device cuda",
            )
        return DTYPES[precision]

    def _networks(self, opts: RenderOptions, dtype: torch.dtype) -> tuple[Networks, Any, Any, Any, Any, Any]:
        """UNet + VAE, Whisper encoder, feature extractor, BiSeNet, DWPose and S3FD, each loaded once."""
        w, device = opts.weights, self.torch_device
        unet = self._cached(
            ("unet", w["unet"], w["unet_config"], dtype),
            lambda: load_unet(w["unet"], w["unet_config"], device, dtype),
        )
        vae = self._cached(
            ("vae", w["vae"], w["vae_config"], dtype),
            lambda: load_vae(w["vae"], w["vae_config"], device, dtype),
        )
        encoder = self._cached(
            ("whisper", w["whisper"], w["whisper_config"], dtype),
            lambda: load_whisper_encoder(w["whisper"], w["whisper_config"], device, dtype),
        )
        extractor = self._cached(
            ("features", w["whisper_preprocessor"]), lambda: load_feature_extractor(w["whisper_preprocessor"])
        )
        bisenet = self._cached(("parser", w["parser"]), lambda: load_bisenet(w["parser"], device))
        pose = self._cached(("pose", w["pose"]), lambda: load_dwpose(w["pose"], device))
        detector = self._cached(
            ("detector", w["detector"]), lambda: FaceDetector(load_s3fd(w["detector"], device), device)
        )
        return Networks(unet, vae), encoder, extractor, bisenet, pose, detector

    # ------------------------------------------------------------------------------- render

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        opts = RenderOptions.from_params(params)
        clock = StageClock()
        visual = read_visual(opts.face)
        if opts.bbox_shift:
            reporter.log("--bbox-shift only applies to MuseTalk 1.0; MuseTalk 1.5 ignores it", "warning")
        if not visual.is_still and opts.fps:
            reporter.log("--fps applies to still images; the video's own frame rate is used", "warning")
        fps = output_fps(visual, opts)
        samples = load_audio(opts.audio, SAMPLE_RATE)
        # A frame rate MuseTalk cannot window, or too little speech, fails here, before any model loads.
        check_speech(samples, sample_rate=SAMPLE_RATE, min_samples=min_speech_samples(fps), model="MuseTalk")
        plan = plan_windows(len(samples), fps)
        dtype = self._dtype(opts.precision)
        clock.lap("load_inputs")
        # Opening the writer first checks the destination before any heavy work; any failure below
        # leaves the block with an exception, which removes the writer's temp files.
        with VideoWriter(
            opts.target,
            fps=fps,
            audio=opts.audio,
            output_format=opts.format,
            overwrite=opts.overwrite,  # type: ignore[arg-type]
        ) as writer:
            stats = self._render_into(writer, visual, samples, plan, dtype, opts, reporter, clock)
        clock.lap("encode")
        stats.update(fps=fps, duration=stats["frames"] / fps, seconds=clock.seconds)
        return (str(opts.output) if opts.output else None), stats

    def _render_into(
        self,
        writer: VideoWriter,
        visual: Visual,
        samples: np.ndarray,
        plan: WindowPlan,
        dtype: torch.dtype,
        opts: RenderOptions,
        reporter: Reporter,
        clock: StageClock,
    ) -> dict[str, Any]:
        with torch.inference_mode():
            nets, encoder, extractor, bisenet, pose, detector = self._networks(opts, dtype)
            clock.lap("model_load")

            states = encode_speech(speech_features(samples, extractor), encoder, len(samples))
            windows = AudioWindows(states, plan)
            clock.lap("features")

            frames = visual.frames
            reporter.progress("finding faces", 0, len(frames))
            boxes = detect_face_boxes(
                frames,
                pose,
                detector,
                batch_size=opts.batch_size,
                progress=lambda done, total: reporter.progress("finding faces", done, total),
            )
            found = [box for box in boxes if box is not None]
            if not found:
                raise BackendError(
                    ErrorCode.NO_FACE,
                    f"no face found in {opts.face.name}"
                    + (f" ({len(frames)} frames)" if len(frames) > 1 else ""),
                    hint="use a portrait with a clearly visible, roughly frontal face",
                )
            if len(found) < len(boxes):
                reporter.log(
                    f"no face in {len(boxes) - len(found)} of {len(boxes)} frames; those frames pass through"
                    " unchanged",
                    "warning",
                )
            clock.lap("detection")

            parser = FaceParser(bisenet, opts.left_cheek_width, opts.right_cheek_width)
            sources = prepare_sources(
                frames, boxes, nets.vae, parser, opts.parsing_mode, opts.extra_margin, opts.batch_size
            )
            clock.lap("prepare")
            timeline = Timeline(opts.duration_mode, len(frames), plan.num_frames)  # type: ignore[arg-type]
            if len(timeline) < plan.num_frames:  # cut: the speech ends with the video
                writer.max_seconds = len(timeline) / float(writer.fps)
            progress = lambda done, total: reporter.progress("lip-syncing", done, total)  # noqa: E731
            for frame in render_frames(frames, timeline, sources, windows, nets, opts.batch_size, progress):
                writer.write(frame)
            clock.lap("render")

        height, width = frames[0].shape[:2]
        x1, y1, x2, y2 = found[0]
        return {
            "frames": len(timeline),
            "duration_mode": opts.duration_mode,
            "audio_duration": len(samples) / SAMPLE_RATE,
            "width": width,
            "height": height,
            "face_box": {"top": y1, "bottom": y2, "left": x1, "right": x2},
            "frames_without_face": len(boxes) - len(found),
            "precision": opts.precision,
            "model_loads": self.model_loads,
        }


def output_fps(visual: Visual, opts: RenderOptions) -> float:
    """The output's frame rate: the video's own, or --fps (default 25) for a still."""
    return (opts.fps or DEFAULT_STILL_FPS) if visual.is_still else float(visual.fps or DEFAULT_STILL_FPS)
