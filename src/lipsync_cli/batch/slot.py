"""One worker slot: a warm backend worker that renders batch jobs one at a time.

The same class runs in a thread of the local pool and inside a Ray actor, so both paths render, restart
crashed workers and report outcomes the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lipsync_kit import protocol

from ..errors import ErrorCode, LipsyncError
from ..output import PlainReporter
from ..render import Renderer
from .manifest import Job
from .plan import WorkerSlot

__all__ = ["MAX_FAILED_STARTS", "Outcome", "Slot"]

MAX_FAILED_STARTS: Final = 3  # a slot whose worker failed to start this often in a row gives up


@dataclass(frozen=True)
class Outcome:
    """What became of one job: the render record, or the error (code, message, hint)."""

    job: Job
    seconds: float
    rendered: dict[str, Any] | None = None
    error: tuple[str, str, str | None] | None = None
    warnings: list[str] = field(default_factory=list)
    worker_starts: int = 0  # starts of this slot's worker so far, this job's restart included

    @classmethod
    def failed(cls, job: Job, err: LipsyncError, seconds: float = 0.0, **extra: Any) -> Outcome:
        return cls(job, seconds, error=(err.code, err.message, err.hint), **extra)

    @property
    def lipsync_error(self) -> LipsyncError | None:
        return LipsyncError(*self.error) if self.error else None


class Slot:
    """A warm worker of one backend in one `WorkerSlot`; `run` renders a job and never raises for it."""

    def __init__(self, backend: str, where: WorkerSlot, *, log_dir: Path | None = None) -> None:
        self.backend = backend
        self.where = where
        # Weights are fetched before any slot starts; a quiet reporter keeps threads off the terminal.
        self.renderer = Renderer(
            backend, PlainReporter(quiet=True), device=where.device, env_vars=where.env_vars, log_dir=log_dir
        )
        self.interrupted = False

    @property
    def gave_up(self) -> bool:
        return self.renderer.failed_starts >= MAX_FAILED_STARTS

    def run(self, job: Job) -> Outcome:
        started = time.perf_counter()
        warnings: list[str] = []

        def on_event(message: protocol.Message) -> None:
            if isinstance(message, protocol.Log) and message.level in ("warning", "error"):
                warnings.append(message.message)

        try:
            if self.interrupted:
                raise LipsyncError(ErrorCode.INTERRUPTED, "interrupted before it started")
            job.output.parent.mkdir(parents=True, exist_ok=True)
            rendered = self.renderer.render(job.request, on_event)
        except (LipsyncError, OSError) as err:
            failure = self._failure(job, err)
            seconds = time.perf_counter() - started
            return Outcome.failed(
                job, failure, seconds, warnings=warnings, worker_starts=self.renderer.starts
            )
        return Outcome(
            job,
            time.perf_counter() - started,
            rendered=rendered,
            warnings=warnings,
            worker_starts=self.renderer.starts,
        )

    def _failure(self, job: Job, err: LipsyncError | OSError) -> LipsyncError:
        if self.interrupted:
            return LipsyncError(ErrorCode.INTERRUPTED, "interrupted; the partial output was removed")
        if isinstance(err, OSError):
            return LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"cannot create {job.output.parent}: {err}")
        return err

    def interrupt(self) -> None:
        """From another thread: fail the job in progress (its partial output is removed) and take no more."""
        self.interrupted = True
        self.renderer.interrupt()

    def close(self) -> None:
        if self.interrupted:
            self.renderer.kill()
        else:
            self.renderer.close()
