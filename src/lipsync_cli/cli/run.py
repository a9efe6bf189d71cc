"""``lipsync run``: render one clip."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..catalogue import get_model
from ..errors import ErrorCode, LipsyncError
from ..evaluation import evaluate_record
from ..model_options import resolve_options
from ..output import Reporter, emit, make_reporter
from ..render import RenderRequest, render, resolve_output
from ..stdin_input import STDIN, InputSpool, PcmFormat
from .model_flags import with_model_flags
from .options import DeviceOpt, JsonOpt, ModelOpt, QuietOpt


class Container(StrEnum):
    mp4 = "mp4"
    mkv = "mkv"


@with_model_flags
def run(
    model: ModelOpt,
    face: Annotated[
        Path,
        typer.Option(
            "--image",
            "--face",
            "-i",
            help="Portrait: a still image or a video; - reads it from stdin.",
            show_default=False,
        ),
    ],
    audio: Annotated[
        Path,
        typer.Option(
            "--audio",
            "-a",
            help="Speech: any file ffmpeg decodes; - reads it from stdin.",
            show_default=False,
        ),
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
    audio_format: Annotated[
        str | None,
        typer.Option(
            metavar="SAMPLES:RATE:CHANNELS",
            help="The audio is raw PCM (no header) of this format, e.g. s16le:16000:1 "
            "(SAMPLES: u8, s16le, s16be, s24le, s32le, f32le, f64le).",
            show_default=False,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            envvar="LIPSYNC_SERVER",
            help="Render on the lipsync server at URL (lipsync serve) when one answers; else here.",
            show_default=False,
        ),
    ] = None,
    eval_: Annotated[
        bool, typer.Option("--eval", help="Score the output's lip sync (lipsync eval) into the result.")
    ] = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Render a lip-synced video from a portrait and a speech track."""
    if json_ and output == "-":
        raise LipsyncError(ErrorCode.BAD_OPTION, "--json and -o - both need stdout; pick one")
    if str(face) == STDIN and str(audio) == STDIN:
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            "--image - and --audio - both read stdin; only one input can come from it",
            hint="give the other one as a file",
        )
    pcm = PcmFormat.parse(audio_format) if audio_format is not None else None
    resolved = resolve_options(get_model(model), options or {}, base_dir=Path.cwd())
    target = resolve_output(output, container.value if container else None, overwrite)
    if eval_ and (target.is_stream or target.format == "png"):
        raise LipsyncError(ErrorCode.BAD_OPTION, "--eval needs a video file output (mp4 or mkv)")
    reporter = make_reporter(json_mode=json_, quiet=quiet)
    with InputSpool() as spool:
        request = RenderRequest.from_options(
            options=resolved,
            model=model,
            face=spool.image(face).expanduser().absolute(),
            audio=spool.audio(audio, pcm).expanduser().absolute(),
            output=target,
            device=device,
            overwrite=overwrite,
            seed=seed,
        )
        result = _render(server, request, options or {}, reporter)
    lines = [] if output == "-" else [result["output"]]
    if eval_:
        got = result["eval"] = evaluate_record(result, reporter, device=device)
        lines.append(f"LSE-D {got['lse_d']:.3f}  LSE-C {got['lse_c']:.3f}  offset {got['offset_frames']:+d}")
    emit("render", result, json_mode=json_, lines=lines)


def _render(
    server: str | None, request: RenderRequest, given: dict[str, Any], reporter: Reporter
) -> dict[str, Any]:
    """On the server at ``server`` when one answers (and can write this output), else here."""
    if server:
        from ..serve.remote import connect, remote_render, server_can_render

        if not server_can_render(request.output):
            reporter.info("a server renders video files only; rendering here")
        elif (client := connect(server, reporter)) is not None:
            with client:
                return remote_render(
                    client,
                    model=request.model,
                    face=request.face,
                    audio=request.audio,
                    output=request.output,
                    options=given,
                    seed=request.seed,
                    device=request.device,
                    overwrite=request.overwrite,
                    reporter=reporter,
                )
    return render(request, reporter)
