"""Warm workers per backend: each lane has a queue and up to N slot threads, each with one `Renderer`.

A slot's thread starts with the lane's first job; its worker process starts on the first render, is
stopped after ``idle_timeout_s`` without work and started again by the next job. A crashed worker fails
only the job it was rendering (`Renderer` starts a fresh one for the next). Cancelling a running job
interrupts the slot's renderer, which leaves no partial output; the slot then takes a fresh renderer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..output import PlainReporter
from ..render import Renderer

__all__ = ["Lane", "Slot"]

_STOP: Final = None


class Slot:
    """One warm worker of a lane; ``job`` is the id it renders now."""

    def __init__(self, backend: str, device: str, log_dir: Path | None) -> None:
        self.backend = backend
        self.device = device
        self.log_dir = log_dir
        self.renderer = self._fresh()
        self.job: str | None = None
        self.cancelled = False  # the job in progress was cancelled

    def _fresh(self) -> Renderer:
        return Renderer(self.backend, PlainReporter(quiet=True), device=self.device, log_dir=self.log_dir)

    def cancel(self, job_id: str) -> bool:
        """Interrupt the render of ``job_id`` if this slot runs it (from another thread)."""
        if self.job != job_id:
            return False
        self.cancelled = True
        self.renderer.interrupt()
        return True

    def after_job(self) -> None:
        if self.cancelled:  # an interrupted renderer refuses further work: take a fresh one
            self.renderer.kill()
            self.renderer = self._fresh()
            self.cancelled = False
        self.job = None


JobRunner = Callable[[Slot, str], None]


class Lane:
    """The queue and slots of one backend."""

    def __init__(
        self,
        backend: str,
        run_job: JobRunner,
        *,
        workers: int,
        device: str,
        idle_timeout_s: float,
        log_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.run_job = run_job
        self.workers = workers
        self.device = device
        self.idle_timeout_s = idle_timeout_s
        self.log_dir = log_dir
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.slots: list[Slot] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, job_id: str) -> None:
        self.queue.put(job_id)
        with self._lock:
            if len(self._threads) < self.workers:
                slot = Slot(self.backend, self.device, self.log_dir)
                thread = threading.Thread(
                    target=self._serve, args=(slot,), name=f"{self.backend}-{len(self.slots)}", daemon=True
                )
                self.slots.append(slot)
                self._threads.append(thread)
                thread.start()

    def _serve(self, slot: Slot) -> None:
        try:
            while True:
                try:
                    job_id = self.queue.get(timeout=self.idle_timeout_s)
                except queue.Empty:
                    slot.renderer.close()  # idle: stop the worker process; the next job starts one
                    continue
                if job_id is _STOP:
                    return
                slot.job = job_id
                try:
                    self.run_job(slot, job_id)
                finally:
                    slot.after_job()
        finally:
            slot.renderer.kill()

    def cancel(self, job_id: str) -> bool:
        return any(slot.cancel(job_id) for slot in list(self.slots))

    def running(self) -> list[str]:
        return [slot.job for slot in list(self.slots) if slot.job is not None]

    def warm(self) -> int:
        """Slots whose worker process is up."""
        return sum(1 for slot in list(self.slots) if slot.renderer.worker is not None)

    def stop(self, timeout: float) -> None:
        """No more jobs: wake every slot thread to exit and wait for them (the job in progress ends first)."""
        for _ in self._threads:
            self.queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout)

    def interrupt(self) -> None:
        for slot in list(self.slots):
            if slot.job is not None:
                slot.cancel(slot.job)
