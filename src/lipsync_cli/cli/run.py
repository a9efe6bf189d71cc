"""``lipsync run``: render one clip."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..catalogue import get_model
from ..errors import ErrorCode, LipsyncError
from ..evaluation import evaluate_record
from ..model_options import BACKEND_OPTIONS, default, resolve_options
from ..output import make_reporter, print_json
from ..render import RenderRequest, render, resolve_output
from .options import DeviceOpt, JsonOpt, ModelOpt, QuietOpt

_WEIGHTS = "Weights (a user's own files; default: the verified official files)"
_WAV2LIP = "Wav2Lip options"
_SADTALKER = "SadTalker options (sadtalker, sadtalker-still)"
_BOTH = "Options of several models"


class Container(StrEnum):
    mp4 = "mp4"
    mkv = "mkv"


def _defaults(name: str) -> str:
    """``(default: ...)`` text naming each backend's default of a shared option."""
    found = [f"{backend} {value}" for backend in BACKEND_OPTIONS if (value := _default_of(backend, name))]
    return f" (default: {'; '.join(found)})" if found else ""


def _default_of(backend: str, name: str) -> str | None:
    try:
        value = default(backend, name)
    except KeyError:
        return None
    return None if value is None else str(value)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """Only the options on the command line: unset ones take the model's defaults (model_options.py)."""
    return {name: value for name, value in values.items() if value is not None and value is not False}


def run(
    model: ModelOpt,
    face: Annotated[
        Path,
        typer.Option(
            "--image", "--face", "-i", help="Portrait: a still image or a video.", show_default=False
        ),
    ],
    audio: Annotated[
        Path, typer.Option("--audio", "-a", help="Speech: any file ffmpeg decodes.", show_default=False)
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="out.mp4, out.mkv, a PNG pattern like frames/%05d.png, or - for stdout."
        ),
    ],
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output.")] = False,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate for still images, Wav2Lip (default: 25).")
    ] = None,
    container: Annotated[
        Container | None, typer.Option("--format", help="Container for -o - (default mp4, fragmented).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed: SadTalker's head motion and blinks repeat exactly with the same seed "
            "(default: a fresh one, reported in --json). Wav2Lip is deterministic."
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Main weights: for Wav2Lip wav2lip (default), wav2lip_gan or a path; for SadTalker the path "
            "of a bundle like SadTalker_V0.0.2_256.safetensors.",
            rich_help_panel=_WEIGHTS,
            show_default=False,
        ),
    ] = None,
    detector_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Face detector: S3FD (Wav2Lip) or RetinaFace (SadTalker).", rich_help_panel=_WEIGHTS
        ),
    ] = None,
    mapping_checkpoint: Annotated[
        Path | None, typer.Option(help="SadTalker mapping net (mapping_*.pth.tar).", rich_help_panel=_WEIGHTS)
    ] = None,
    enhancer_checkpoint: Annotated[
        Path | None,
        typer.Option(help="SadTalker --enhancer gfpgan weights (GFPGANv1.4.pth).", rich_help_panel=_WEIGHTS),
    ] = None,
    parsing_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Face-parsing net of the enhancer (parsing_parsenet.pth).", rich_help_panel=_WEIGHTS
        ),
    ] = None,
    landmark_checkpoint: Annotated[
        Path | None,
        typer.Option(help="SadTalker landmark net (alignment_WFLW_4HG.pth).", rich_help_panel=_WEIGHTS),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Frames per generator call." + _defaults("batch_size") + " SadTalker: 2 on CPU, 16 on CUDA.",
            rich_help_panel=_BOTH,
        ),
    ] = None,
    paste: Annotated[
        str | None,
        typer.Option(
            help="Wav2Lip: exact (the official hard box) or blend (feathered mouth). SadTalker full modes: "
            "poisson (the official seamlessClone) or blend (feathered face)." + _defaults("paste"),
            rich_help_panel=_BOTH,
            show_default=False,
        ),
    ] = None,
    pads: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option(
            metavar="TOP BOTTOM LEFT RIGHT",
            help="Padding around the face box (default: 0 10 0 0).",
            rich_help_panel=_WAV2LIP,
            show_default=False,
        ),
    ] = None,
    box: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option(
            metavar="TOP BOTTOM LEFT RIGHT",
            help="Fixed face box; skips detection.",
            rich_help_panel=_WAV2LIP,
            show_default=False,
        ),
    ] = None,
    nosmooth: Annotated[
        bool, typer.Option("--nosmooth", help="Do not smooth boxes over 5 frames.", rich_help_panel=_WAV2LIP)
    ] = False,
    resize_factor: Annotated[
        int | None,
        typer.Option(
            help="Downscale video frames by this factor first (default: 1).", rich_help_panel=_WAV2LIP
        ),
    ] = None,
    crop: Annotated[
        tuple[int, int, int, int] | None,
        typer.Option(
            metavar="TOP BOTTOM LEFT RIGHT",
            help="Crop video frames (-1: to the edge).",
            rich_help_panel=_WAV2LIP,
            show_default=False,
        ),
    ] = None,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Rotate video frames 90° clockwise.", rich_help_panel=_WAV2LIP)
    ] = False,
    face_det_batch_size: Annotated[
        int | None, typer.Option(help="Face-detector batch size (default: 16).", rich_help_panel=_WAV2LIP)
    ] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(
            help="crop, extcrop, resize, full or extfull (default: crop; sadtalker-still: full). "
            "full/extfull paste the face back into the whole picture.",
            rich_help_panel=_SADTALKER,
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Renderer size, 256 or 512 (default: 256).", rich_help_panel=_SADTALKER)
    ] = None,
    pose_style: Annotated[
        int | None, typer.Option(help="Head-motion style 0..45 (default: 0).", rich_help_panel=_SADTALKER)
    ] = None,
    expression_scale: Annotated[
        float | None,
        typer.Option(help="Strength of the expressions (default: 1.0).", rich_help_panel=_SADTALKER),
    ] = None,
    ref_eyeblink: Annotated[
        Path | None,
        typer.Option(help="Video whose eye blinks (expressions) to copy.", rich_help_panel=_SADTALKER),
    ] = None,
    ref_pose: Annotated[
        Path | None, typer.Option(help="Video whose head motion to add.", rich_help_panel=_SADTALKER)
    ] = None,
    input_yaw: Annotated[
        str | None,
        typer.Option(
            metavar="DEGREES",
            help="Head yaw key angles, e.g. 0,20,-10 (ramps between).",
            rich_help_panel=_SADTALKER,
        ),
    ] = None,
    input_pitch: Annotated[
        str | None, typer.Option(metavar="DEGREES", help="Head pitch key angles.", rich_help_panel=_SADTALKER)
    ] = None,
    input_roll: Annotated[
        str | None, typer.Option(metavar="DEGREES", help="Head roll key angles.", rich_help_panel=_SADTALKER)
    ] = None,
    enhancer: Annotated[
        str | None,
        typer.Option(
            help="gfpgan: restore the faces of every frame with GFPGAN v1.4 (output 2x larger, slower).",
            rich_help_panel=_SADTALKER,
            show_default=False,
        ),
    ] = None,
    face_index: Annotated[
        int | None,
        typer.Option(
            help="Which face when there are several, counted from the left from 0 (default: the largest).",
            rich_help_panel=_SADTALKER,
        ),
    ] = None,
    eval_: Annotated[
        bool, typer.Option("--eval", help="Score the output's lip sync (lipsync eval) into the result.")
    ] = False,
) -> None:
    """Render a lip-synced video from a portrait and a speech track."""
    if json_ and output == "-":
        raise LipsyncError(ErrorCode.BAD_OPTION, "--json and -o - both need stdout; pick one")
    given = _given(
        {
            "fps": fps,
            "checkpoint": checkpoint,
            "detector_checkpoint": detector_checkpoint,
            "mapping_checkpoint": mapping_checkpoint,
            "landmark_checkpoint": landmark_checkpoint,
            "batch_size": batch_size,
            "paste": paste,
            "pads": pads,
            "box": box,
            "nosmooth": nosmooth,
            "resize_factor": resize_factor,
            "crop": crop,
            "rotate": rotate,
            "face_det_batch_size": face_det_batch_size,
            "preprocess": preprocess,
            "size": size,
            "pose_style": pose_style,
            "expression_scale": expression_scale,
            "ref_eyeblink": ref_eyeblink,
            "ref_pose": ref_pose,
            "input_yaw": input_yaw,
            "input_pitch": input_pitch,
            "input_roll": input_roll,
            "face_index": face_index,
            "enhancer": enhancer,
            "enhancer_checkpoint": enhancer_checkpoint,
            "parsing_checkpoint": parsing_checkpoint,
        }
    )
    resolved = resolve_options(get_model(model), given, base_dir=Path.cwd())
    request = RenderRequest.from_options(
        options=resolved,
        model=model,
        face=face.expanduser().absolute(),
        audio=audio.expanduser().absolute(),
        output=resolve_output(output, container.value if container else None, overwrite),
        device=device,
        overwrite=overwrite,
        seed=seed,
    )
    if eval_ and (output == "-" or request.output.format == "png"):
        raise LipsyncError(ErrorCode.BAD_OPTION, "--eval needs a video file output (mp4 or mkv)")
    reporter = make_reporter(json_mode=json_, quiet=quiet)
    result = render(request, reporter)
    if eval_:
        result["eval"] = evaluate_record(result, reporter, device=device)
    if json_:
        print_json("render", result)
    elif output != "-":
        print(result["output"])
        if eval_:
            got = result["eval"]
            print(f"LSE-D {got['lse_d']:.3f}  LSE-C {got['lse_c']:.3f}  offset {got['offset_frames']:+d}")
