"""``lipsync run``: render one clip."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..catalogue import get_model
from ..errors import ErrorCode, LipsyncError
from ..model_options import default, resolve_options
from ..output import make_reporter, print_json
from ..render import RenderRequest, render, resolve_output
from .options import DeviceOpt, JsonOpt, ModelOpt, QuietOpt

_WAV2LIP = "Wav2Lip options"


class Paste(StrEnum):
    blend = "blend"
    exact = "exact"


class Container(StrEnum):
    mp4 = "mp4"
    mkv = "mkv"


def _wav2lip(name: str) -> Any:
    return default("wav2lip", name)


_DEFAULT_PASTE = Paste(_wav2lip("paste"))


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
    fps: Annotated[float | None, typer.Option(help="Frame rate for still images [default: 25].")] = None,
    container: Annotated[
        Container | None, typer.Option("--format", help="Container for -o - (default mp4, fragmented).")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Generator weights: wav2lip (default), wav2lip_gan, or the path of your own checkpoint.",
            rich_help_panel=_WAV2LIP,
        ),
    ] = None,
    detector_checkpoint: Annotated[
        Path | None,
        typer.Option(help="Path of your own S3FD face-detector weights.", rich_help_panel=_WAV2LIP),
    ] = None,
    pads: Annotated[
        tuple[int, int, int, int],
        typer.Option(
            metavar="TOP BOTTOM LEFT RIGHT", help="Padding around the face box.", rich_help_panel=_WAV2LIP
        ),
    ] = _wav2lip("pads"),
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
    ] = _wav2lip("nosmooth"),
    resize_factor: Annotated[
        int, typer.Option(help="Downscale video frames by this factor first.", rich_help_panel=_WAV2LIP)
    ] = _wav2lip("resize_factor"),
    crop: Annotated[
        tuple[int, int, int, int],
        typer.Option(
            metavar="TOP BOTTOM LEFT RIGHT",
            help="Crop video frames (-1: to the edge).",
            rich_help_panel=_WAV2LIP,
        ),
    ] = _wav2lip("crop"),
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Rotate video frames 90° clockwise.", rich_help_panel=_WAV2LIP)
    ] = _wav2lip("rotate"),
    batch_size: Annotated[
        int, typer.Option(help="Generator batch size.", rich_help_panel=_WAV2LIP)
    ] = _wav2lip("batch_size"),
    face_det_batch_size: Annotated[
        int, typer.Option(help="Face-detector batch size.", rich_help_panel=_WAV2LIP)
    ] = _wav2lip("face_det_batch_size"),
    paste: Annotated[
        Paste,
        typer.Option(
            help="exact: the official hard box; blend: feathered mouth region.", rich_help_panel=_WAV2LIP
        ),
    ] = _DEFAULT_PASTE,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed for models that sample (Wav2Lip is deterministic and ignores it)."),
    ] = None,
) -> None:
    """Render a lip-synced video from a portrait and a speech track."""
    if json_ and output == "-":
        raise LipsyncError(ErrorCode.BAD_OPTION, "--json and -o - both need stdout; pick one")
    given: dict[str, Any] = {
        "fps": fps,
        "checkpoint": checkpoint,
        "detector_checkpoint": detector_checkpoint,
        "pads": pads,
        "box": box,
        "nosmooth": nosmooth,
        "resize_factor": resize_factor,
        "crop": crop,
        "rotate": rotate,
        "batch_size": batch_size,
        "face_det_batch_size": face_det_batch_size,
        "paste": paste.value,
    }
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
    reporter = make_reporter(json_mode=json_, quiet=quiet)
    result = render(request, reporter)
    if json_:
        print_json("render", result)
    elif output != "-":
        print(result["output"])
