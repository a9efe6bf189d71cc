"""Live state of jobs (status, stage progress, worker) and its history, for server-sent events.

Worker threads write, request handlers read. Every change gets the job's next sequence number and is
kept in the job's history, so an event stream sends every step in order and misses none, however
briefly a stage lasted. Histories of ended jobs are kept for the most recent few, then dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Final

__all__ = ["Hub", "Live"]

_MAX_HISTORY: Final = 2000  # steps kept per job (the oldest go first)
_KEEP_ENDED: Final = 256  # ended jobs whose history is kept for late event streams


@dataclass(frozen=True)
class Live:
    seq: int = 0
    status: str = "queued"
    progress: dict[str, Any] | None = None  # {"stage", "done", "total"}
    worker_pid: int | None = None
    warnings: tuple[str, ...] = ()


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, list[Live]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()

    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            steps = self._history.setdefault(job_id, [])
            current = steps[-1] if steps else Live()
            steps.append(replace(current, seq=current.seq + 1, **changes))
            del steps[:-_MAX_HISTORY]

    def warn(self, job_id: str, message: str) -> None:
        with self._lock:
            current = self._history.get(job_id, [Live()])[-1]
        self.update(job_id, warnings=(*current.warnings, message))

    def get(self, job_id: str) -> Live | None:
        with self._lock:
            steps = self._history.get(job_id)
            return steps[-1] if steps else None

    def since(self, job_id: str, seq: int) -> list[Live]:
        """The steps after ``seq``, oldest first."""
        with self._lock:
            return [step for step in self._history.get(job_id, ()) if step.seq > seq]

    def ended(self, job_id: str) -> None:
        """The job ended (its final state is in the store); its history stays for a while."""
        with self._lock:
            self._ended[job_id] = None
            while len(self._ended) > _KEEP_ENDED:
                old, _ = self._ended.popitem(last=False)
                self._history.pop(old, None)
