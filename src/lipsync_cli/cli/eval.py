"""``lipsync eval``: SyncNet lip-sync scores (LSE-D, LSE-C, offset) of one or more videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ErrorCode, LipsyncError
from ..evaluation import EvalRequest, evaluate
from ..output import emit, make_reporter
from .options import DeviceOpt, JsonOpt, QuietOpt

EPILOG = (
    "LSE-D: mean SyncNet distance at the best offset (lower is better); LSE-C: median minus minimum of "
    "the distances over the offsets (higher is better); offset: frames (40 ms) the audio is early (+) or "
    "late (-)."
)


def _spark(values: list[float]) -> str:
    """A one-line chart of a curve."""
    bars = " ▁▂▃▄▅▆▇█"
    lo, hi = min(values), max(values)
    return "".join(bars[round((v - lo) / ((hi - lo) or 1.0) * (len(bars) - 1))] for v in values)


def _summary(record: dict[str, Any]) -> str:
    seconds = " ".join("-" if c is None else f"{c:.1f}" for c in record["per_second"])
    return "\n".join(
        [
            f"video          {record['video']}",
            f"LSE-D          {record['lse_d']:.3f}   (distance, lower is better)",
            f"LSE-C          {record['lse_c']:.3f}   (confidence, higher is better)",
            f"offset         {record['offset_frames']:+d} frames ({record['offset_ms']:+d} ms)",
            f"face tracked   {100 * record['face_share']:.1f} % of {record['frames']} frames "
            f"({len(record['tracks'])} track{'s' * (len(record['tracks']) != 1)})",
            f"offset curve   {record['offsets'][0]:+d} {_spark(record['curve'])} {record['offsets'][-1]:+d}",
            f"per second     {seconds}",
            *([f"sheet          {record['sheet']}"] if record.get("sheet") else []),
        ]
    )


def _table(records: list[dict[str, Any]]) -> str:
    width = max(len("video"), *(len(r["video"]) for r in records))
    lines = [f"{'video':<{width}}  {'LSE-D':>7}  {'LSE-C':>7}  {'offset':>6}  {'face %':>6}"]
    for r in records:
        lines.append(
            f"{r['video']:<{width}}  {r['lse_d']:7.3f}  {r['lse_c']:7.3f}  {r['offset_frames']:+6d}  "
            f"{100 * r['face_share']:6.1f}"
        )
    return "\n".join(lines)


def eval_(
    videos: Annotated[list[Path], typer.Argument(help="Videos to score (several: a comparison table).")],
    audio: Annotated[
        Path | None,
        typer.Option("--audio", "-a", help="Score against this speech instead of each video's own sound."),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(help="Write a PNG: mouth crops over time, confidence per second, the offset curve."),
    ] = None,
    device: DeviceOpt = "auto",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing sheet.")] = False,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Your syncnet_v2.model (default: the one in the weights folder).")
    ] = None,
    detector_checkpoint: Annotated[
        Path | None,
        typer.Option(help="Face detector: sfd_face.pth or s3fd-619a316812.pth (default: the latter)."),
    ] = None,
    box: Annotated[
        tuple[float, float, float, float] | None,
        typer.Option(metavar="X1 Y1 X2 Y2", help="A fixed face box in pixels: no detection, one track."),
    ] = None,
    min_track: Annotated[
        int | None,
        typer.Option(
            help="Frames a face track needs (default: 100 as the official, or half a shorter video)."
        ),
    ] = None,
) -> None:
    """Score lip sync with SyncNet (LSE-D, LSE-C, audio-video offset), as joonson/syncnet_python does."""
    if sheet is not None and len(videos) > 1:
        raise LipsyncError(ErrorCode.BAD_OPTION, "--sheet takes one video", "score the videos one by one")
    if min_track is not None and min_track < 1:
        raise LipsyncError(ErrorCode.BAD_OPTION, "--min-track must be at least 1")
    if box is not None and not (box[2] > box[0] and box[3] > box[1]):
        raise LipsyncError(ErrorCode.BAD_OPTION, f"--box {box}: x2 must exceed x1 and y2 must exceed y1")
    requests = [
        EvalRequest(
            video=video,
            audio=audio,
            sheet=sheet,
            overwrite=overwrite,
            checkpoint=checkpoint,
            detector_checkpoint=detector_checkpoint,
            box=box,
            min_track=min_track,
        )
        for video in videos
    ]
    records = evaluate(requests, make_reporter(json_mode=json_, quiet=quiet), device=device)
    single = len(records) == 1
    emit(
        "eval",
        records[0] if single else {"ok": True, "results": records},
        json_mode=json_,
        lines=[_summary(records[0]) if single else _table(records)],
    )
