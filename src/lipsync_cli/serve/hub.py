"""Live state of active jobs (status, stage progress, worker) for server-sent events and job views.

Worker threads write, request handlers read; every change bumps the job's sequence number so an event
stream knows when there is something new to send.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Hub", "Live"]


@dataclass(frozen=True)
class Live:
    seq: int = 0
    status: str = "queued"
    progress: dict[str, Any] | None = None  # {"stage", "done", "total"}
    worker_pid: int | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, Live] = {}

    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._live.get(job_id, Live())
            self._live[job_id] = replace(current, seq=current.seq + 1, **changes)

    def warn(self, job_id: str, message: str) -> None:
        with self._lock:
            current = self._live.get(job_id, Live())
            self._live[job_id] = replace(current, seq=current.seq + 1, warnings=(*current.warnings, message))

    def get(self, job_id: str) -> Live | None:
        with self._lock:
            return self._live.get(job_id)

    def drop(self, job_id: str) -> None:
        """Forget a finished job (its final state is in the store)."""
        with self._lock:
            self._live.pop(job_id, None)
