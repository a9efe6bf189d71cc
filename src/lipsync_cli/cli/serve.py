"""``lipsync serve``: the HTTP API and the web page on warm workers (needs the ``serve`` extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import SERVE_UNAVAILABLE, LipsyncError
from .options import DeviceOpt

_MIB = 1024 * 1024


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LIPSYNC_TOKEN",
            help="Every request must carry it (Authorization: Bearer TOKEN). Needed off loopback.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[int, typer.Option(help="Warm workers per model.")] = 1,
    idle_timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="Stop a worker after this long without work.")
    ] = 600.0,
    max_upload_mb: Annotated[
        float, typer.Option(metavar="MIB", help="Largest submission (portrait + speech).")
    ] = 200.0,
    allow_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-paths",
            metavar="DIR",
            help="Let submissions name files under DIR instead of uploading them (repeatable).",
        ),
    ] = None,
    keep_hours: Annotated[
        float, typer.Option(metavar="HOURS", help="Prune finished jobs and their files after this long.")
    ] = 24.0 * 7,
    max_jobs: Annotated[int, typer.Option(help="Keep at most this many finished jobs.")] = 1000,
    max_storage_gb: Annotated[
        float, typer.Option(metavar="GIB", help="Prune the oldest finished jobs past this much disk.")
    ] = 20.0,
    drain_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="On SIGTERM, how long running jobs may finish."),
    ] = 60.0,
) -> None:
    """Serve the HTTP API (/v1, docs at /docs) and the web page on warm workers."""
    try:
        from ..serve.config import ServeConfig
        from ..serve.server import serve as run_server
    except ImportError as err:
        raise LipsyncError(
            SERVE_UNAVAILABLE,
            f"lipsync serve needs the serve extra ({err.name} is not installed)",
            hint="pip install 'lipsync-cli[serve]' (from a checkout: uv sync --extra serve)",
        ) from None
    config = ServeConfig(
        host=host,
        port=port,
        token=token or None,
        device=device,
        workers=workers,
        idle_timeout_s=idle_timeout,
        max_upload_bytes=int(max_upload_mb * _MIB),
        allow_paths=tuple(p.expanduser().resolve() for p in allow_paths or ()),
        keep_hours=keep_hours,
        max_jobs=max_jobs,
        max_storage_bytes=int(max_storage_gb * 1024 * _MIB),
        drain_timeout_s=drain_timeout,
    )
    os.environ.pop("LIPSYNC_TOKEN", None)  # never handed on to worker processes
    run_server(config)
