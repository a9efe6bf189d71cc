"""The SadTalker backend as the worker loop sees it: models cached per worker, one render per request."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
from lipsync_kit.audio import load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from lipsync_kit.request import RenderParams
from lipsync_kit.timing import StageClock
from lipsync_kit.video import VideoWriter, read_visual
from lipsync_kit.worker import Reporter

from . import __version__
from .animate import FaceRenderNets, animate
from .audio_features import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, blink_ratio, check_speech, mel_windows
from .enhance import FaceEnhancer
from .face_analysis import FaceAnalyzer
from .mapping import COEFF_CHANNELS_CROP, COEFF_CHANNELS_FULL, MappingNet
from .models import BundleNets, load_bundle, load_mapping
from .options import OPTIONS
from .paste import FeatherMask, paste_face
from .pipeline import (
    FULL_MODES,
    SourceFace,
    analyse_source,
    driving_coefficients,
    output_size,
    reference_coefficients,
    to_uint8_frames,
)
from .render_inputs import RenderInputs, prepare_render_inputs

__all__ = ["RenderOptions", "SadTalkerBackend"]

DEFAULT_BATCH: Final = {"cpu": 2, "cuda": 16, "mps": 4}


@dataclass(frozen=True)
class RenderOptions(RenderParams):
    """One render request, parsed from the protocol's ``params``."""

    bundle: Path
    mapping: Path
    detector: Path
    landmarks: Path
    enhancer: Path | None  # GFPGAN weights: restore the faces of every frame (output 2x)
    parser: Path | None  # ParseNet weights for the enhancer's paste mask
    still: bool
    seed: int | None
    preprocess: str
    size: int
    pose_style: int
    expression_scale: float
    batch_size: int | None
    ref_eyeblink: Path | None
    ref_pose: Path | None
    input_yaw: tuple[float, ...] | None
    input_pitch: tuple[float, ...] | None
    input_roll: tuple[float, ...] | None
    face_index: int | None
    paste: str

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RenderOptions:
        declared = RenderParams.declared(params, OPTIONS)
        declared.pop("enhancer")  # ``--enhancer gfpgan`` is what makes the host send the GFPGAN weights
        try:
            return cls(
                **RenderParams.common(params),
                **declared,
                bundle=RenderParams.weight(params, "bundle"),
                mapping=RenderParams.weight(params, "mapping"),
                detector=RenderParams.weight(params, "detector"),  # every preprocess mode detects
                landmarks=RenderParams.weight(params, "landmarks"),
                enhancer=RenderParams.weight(params, "enhancer", required=False),  # --enhancer only
                parser=RenderParams.weight(params, "parser", required=False),
                still=bool(params.get("still", False)),
                seed=int(params["seed"]) if params.get("seed") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BackendError(ErrorCode.BAD_OPTION, f"bad render request: {err!r}") from err

    @property
    def full(self) -> bool:
        return self.preprocess in FULL_MODES


class SadTalkerBackend:
    name = "sadtalker"
    version = __version__

    def __init__(self, device: str) -> None:
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self._bundles: dict[Path, BundleNets] = {}
        self._mappings: dict[tuple[Path, int], MappingNet] = {}
        self._analyzers: dict[tuple[Path, Path], FaceAnalyzer] = {}
        self._enhancers: dict[tuple[Path, Path | None, Path, Path], FaceEnhancer] = {}
        self.model_loads = 0

    def capabilities(self) -> dict[str, Any]:
        return {
            "models": ["sadtalker", "sadtalker-still"],
            "formats": ["mp4", "mkv", "png", "stream"],
            "options": [option.name for option in OPTIONS],
        }

    # ------------------------------------------------------------------------------- models

    def _bundle(self, path: Path) -> BundleNets:
        if path not in self._bundles:
            self._bundles[path] = load_bundle(path, self.torch_device)
            self.model_loads += 1
        return self._bundles[path]

    def _mapping(self, path: Path, full: bool) -> MappingNet:
        key = (path, COEFF_CHANNELS_FULL if full else COEFF_CHANNELS_CROP)
        if key not in self._mappings:
            self._mappings[key] = load_mapping(path, key[1], self.torch_device)
            self.model_loads += 1
        return self._mappings[key]

    def _analyzer(self, detector: Path, landmarks: Path) -> FaceAnalyzer:
        key = (detector, landmarks)
        if key not in self._analyzers:
            self._analyzers[key] = FaceAnalyzer.from_files(detector, landmarks, self.torch_device)
            self.model_loads += 1
        return self._analyzers[key]

    def _enhancer(self, opts: RenderOptions) -> FaceEnhancer | None:
        if opts.enhancer is None:
            return None
        key = (opts.enhancer, opts.parser, opts.detector, opts.landmarks)
        if key not in self._enhancers:
            analyzer = self._analyzer(opts.detector, opts.landmarks)
            self._enhancers[key] = FaceEnhancer.from_files(
                opts.enhancer, self.torch_device, analyzer, parsenet_path=opts.parser
            )
            self.model_loads += 1
        return self._enhancers[key]

    # ------------------------------------------------------------------------------- render

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        opts = RenderOptions.from_params(params)
        target = opts.target
        seed = opts.seed if opts.seed is not None else secrets.randbits(31)
        clock = StageClock()
        # Opening the writer first checks the destination before any heavy work; any failure
        # below leaves the block with an exception, which removes the writer's temp files.
        with VideoWriter(
            target,
            fps=float(FPS),
            audio=opts.audio,
            output_format=opts.format,  # type: ignore[arg-type]
            overwrite=opts.overwrite,
        ) as writer:
            stats = self._render_into(writer, opts, seed, reporter, clock)
        clock.lap("encode")
        stats["seconds"] = clock.seconds
        return (str(opts.output) if opts.output else None), stats

    def _reference(
        self, path: Path | None, frames: int, opts: RenderOptions, nets: BundleNets, analyzer: FaceAnalyzer
    ) -> np.ndarray | None:
        if path is None:
            return None
        visual = read_visual(path, max_frames=frames)
        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in visual.frames]
        return reference_coefficients(
            rgb, analyzer, nets.recon, mode=opts.preprocess, size=opts.size, what=path.name
        )

    def _render_into(
        self, writer: VideoWriter, opts: RenderOptions, seed: int, reporter: Reporter, clock: StageClock
    ) -> dict[str, Any]:
        visual = read_visual(opts.face, max_frames=1)
        if not visual.is_still:
            reporter.log("the face input is a video: its first frame is the portrait", "info")
        source_rgb = cv2.cvtColor(visual.frames[0], cv2.COLOR_BGR2RGB)
        samples = load_audio(opts.audio, SAMPLE_RATE)
        check_speech(samples)
        clock.lap("load_inputs")

        nets = self._bundle(opts.bundle)
        renderer = nets.renderer(self._mapping(opts.mapping, opts.full))
        analyzer = self._analyzer(opts.detector, opts.landmarks)
        enhancer = self._enhancer(opts)
        if enhancer is not None:
            enhancer.reseed(seed)
        clock.lap("model_load")

        reporter.progress("finding the face", 0, 1)
        source = analyse_source(
            source_rgb,
            analyzer,
            nets.recon,
            mode=opts.preprocess,
            size=opts.size,
            face_index=opts.face_index,
            what=opts.face.name,
        )
        reporter.progress("finding the face", 1, 1)
        clock.lap("crop_3dmm")

        # Pad the speech to whole frames so the video covers all of it (upstream drops the tail).
        padded = np.pad(samples, (0, -len(samples) % SAMPLES_PER_FRAME))
        windows = mel_windows(padded)
        frames = len(windows)
        ref_eyeblink = self._reference(opts.ref_eyeblink, frames, opts, nets, analyzer)
        ref_pose = self._reference(opts.ref_pose, frames, opts, nets, analyzer)
        blink = blink_ratio(frames, np.random.default_rng(seed))
        coeffs = driving_coefficients(
            nets,
            windows,
            source.coeffs,
            blink=blink,
            pose_style=opts.pose_style,
            seed=seed,
            ref_eyeblink=ref_eyeblink,
            ref_pose=ref_pose,
        )
        clock.lap("audio_to_coeffs")

        inputs = prepare_render_inputs(
            source.crop,
            source.coeffs,
            coeffs,
            full=opts.full,
            still=opts.still,
            expression_scale=opts.expression_scale,
            yaw=opts.input_yaw,
            pitch=opts.input_pitch,
            roll=opts.input_roll,
        )
        batch = opts.batch_size or DEFAULT_BATCH.get(self.torch_device.type, 2)
        width, height = self._write_frames(
            writer, enhancer, inputs, renderer, source, source_rgb, batch, opts, reporter, clock
        )
        return {
            "frames": frames,
            "fps": float(FPS),
            "duration": frames / FPS,
            "audio_duration": len(samples) / SAMPLE_RATE,
            "width": width,
            "height": height,
            "seed": seed,
            "preprocess": opts.preprocess,
            "still": opts.still,
            "size": opts.size,
            "paste": opts.paste if opts.full else None,
            "enhancer": "gfpgan" if enhancer is not None else None,
            "face_box": None if source.box is None else [round(v, 1) for v in source.box],
            "crop_region": list(source.info.region_in_image),
            "model_loads": self.model_loads,
        }

    def _write_frames(
        self,
        writer: VideoWriter,
        enhancer: FaceEnhancer | None,
        inputs: RenderInputs,
        renderer: FaceRenderNets,
        source: SourceFace,
        source_rgb: np.ndarray,
        batch: int,
        opts: RenderOptions,
        reporter: Reporter,
        clock: StageClock,
    ) -> tuple[int, int]:
        """Render batch by batch, paste back (full modes) or resize, and hand frames to the writer."""
        feather = FeatherMask()
        region = source.info.region_in_image
        background = source_rgb
        size = (
            (source_rgb.shape[1], source_rgb.shape[0]) if opts.full else output_size(source.info, opts.size)
        )
        for rendered in animate(
            renderer,
            inputs,
            batch_size=batch,
            progress=lambda done, total: reporter.progress("rendering", done, total),
        ):
            faces = to_uint8_frames(rendered)
            clock.lap("render")
            frames = []
            for face in faces:
                if opts.full:
                    frames.append(paste_face(background, face, region, opts.paste, feather))  # type: ignore[arg-type]
                elif size != (face.shape[1], face.shape[0]):
                    frames.append(cv2.resize(face, size))
                else:
                    frames.append(face)
            clock.lap("paste")
            if enhancer is not None:
                frames = enhancer.enhance_frames(frames)
                clock.lap("enhance")
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
            clock.lap("encode")
        return (size[0] * 2, size[1] * 2) if enhancer is not None else size
