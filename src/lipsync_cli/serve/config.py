"""The settings of one server: where it listens, who may call it, and its limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .. import paths
from ..errors import ErrorCode, LipsyncError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServeConfig", "is_loopback"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
MIB: Final = 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    device: str = "auto"
    workers: int = 1  # warm workers per model
    idle_timeout_s: float = 600.0  # a worker with nothing to do for this long is stopped
    max_upload_bytes: int = 200 * MIB  # one submission, portrait and speech together
    allow_paths: tuple[Path, ...] = ()  # folders whose files a submission may name instead of uploading
    keep_hours: float = 24.0 * 7  # finished jobs and their files older than this are pruned
    max_jobs: int = 1000  # at most this many finished jobs are kept (the oldest go first)
    max_storage_bytes: int = 20 * 1024 * MIB  # the job folders together (the oldest finished go first)
    drain_timeout_s: float = 60.0  # SIGTERM: how long running jobs may finish before they are interrupted
    home: Path = field(default_factory=lambda: paths.home() / "serve")

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"binding {self.host} exposes the server beyond this machine and needs a token",
                hint="pass --token or set LIPSYNC_TOKEN (every request must then carry it)",
            )
        if self.workers < 1:
            raise LipsyncError(ErrorCode.BAD_OPTION, f"--workers must be at least 1, got {self.workers}")
        if self.max_upload_bytes < 1:
            raise LipsyncError(ErrorCode.BAD_OPTION, "--max-upload-mb must be positive")
        for folder in self.allow_paths:
            if not folder.is_dir():
                raise LipsyncError(ErrorCode.BAD_OPTION, f"--allow-paths {folder} is not a folder")

    @property
    def database(self) -> Path:
        return self.home / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"
