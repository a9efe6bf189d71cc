"""``lipsync run --server``: the same request rendered by a running server, the output written here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from ..catalogue import get_model
from ..errors import ErrorCode, LipsyncError
from ..model_options import absolute_paths
from ..output import Reporter
from ..render import OutputTarget, check_audio, check_face
from .client import ServerClient

__all__ = ["remote_render", "server_can_render"]


def server_can_render(output: OutputTarget) -> bool:
    """A server renders video files; PNG frames and ``-o -`` (fragmented MP4 on a pipe) render here."""
    return output.path is not None and output.format in ("mp4", "mkv")


def _token() -> str | None:
    return os.environ.get("LIPSYNC_TOKEN") or None


def connect(url: str, reporter: Reporter) -> ServerClient | None:
    """A client of the server at ``url``, or None (with a note) when nothing answers there."""
    client = ServerClient(url, _token())
    if client.available():
        return client
    client.close()
    reporter.warn(f"no lipsync server answers at {url}; rendering here")
    return None


def remote_render(
    client: ServerClient,
    *,
    model: str,
    face: Path,
    audio: Path,
    output: OutputTarget,
    options: dict[str, Any],
    seed: int | None,
    device: str,
    overwrite: bool,
    reporter: Reporter,
) -> dict[str, Any]:
    """Check the inputs here, render on the server, download the output; returns the ``--json`` record."""
    started = time.perf_counter()
    assert output.path is not None
    check_face(face)
    check_audio(audio)
    given = absolute_paths(get_model(model), options, Path.cwd())
    job = client.submit(model, face, audio, options=given, seed=seed, fmt=output.format, device=device)
    stage: list[str | None] = [None]

    def on_progress(update: dict[str, Any]) -> None:
        progress = update.get("progress")
        if progress and progress["stage"] != stage[0]:
            stage[0] = progress["stage"]
            reporter.info(f"{progress['stage']} …")

    try:
        done = client.wait(job["id"], on_progress)
        client.download_to(job["id"], output.path, overwrite=overwrite)
    except KeyboardInterrupt:
        try:
            client.cancel(job["id"])
        except LipsyncError as err:
            print(f"warning: could not cancel job {job['id']}: {err.message}", file=sys.stderr)
        raise
    record = dict(done["result"])
    record["output"] = str(output.path)
    seconds = dict(record.get("seconds", {}))
    seconds["server_job"] = seconds.pop("total", 0.0)
    seconds["total"] = round(time.perf_counter() - started, 4)
    record["seconds"] = seconds
    record["server"] = {"url": client.url, "job": job["id"]}
    if record.get("ok") is not True:
        raise LipsyncError(ErrorCode.PROTOCOL, "the server sent a result that is not ok")
    return record
