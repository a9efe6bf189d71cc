"""The local scheduler: per backend, a few worker slots in threads take jobs from one queue.

Backends run one after another (two models never hold a GPU at once). Outcomes reach the caller's
handler in the calling thread as jobs finish. On Ctrl-C every worker is stopped, the jobs in progress
come back as ``interrupted`` (their partial outputs removed), and the interrupt is raised again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..errors import ErrorCode, LipsyncError
from .manifest import Job
from .plan import WorkerSlot
from .slot import Outcome, Slot

__all__ = ["OutcomeHandler", "run_local"]

OutcomeHandler = Callable[[Outcome], None]

_POLL_S: Final = 0.2  # how often the waiting thread wakes up, so Ctrl-C is seen promptly
_JOIN_S: Final = 30.0


class _SlotDone:
    """Sent by a slot's thread when it takes no more jobs."""


def _serve(slot: Slot, todo: queue.SimpleQueue[Job], outcomes: queue.Queue[Outcome | _SlotDone]) -> None:
    try:
        while not slot.interrupted and not slot.gave_up:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                break
            outcomes.put(slot.run(job))
    finally:
        slot.close()
        outcomes.put(_SlotDone())


def _run_group(
    backend: str,
    jobs: list[Job],
    where: list[WorkerSlot],
    handle: OutcomeHandler,
    starts: dict[str, int],
    log_dir: Path | None,
) -> None:
    todo: queue.SimpleQueue[Job] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    outcomes: queue.Queue[Outcome | _SlotDone] = queue.Queue()
    slots = [Slot(backend, w, log_dir=log_dir) for w in where[: len(jobs)]]
    threads = [
        threading.Thread(target=_serve, args=(slot, todo, outcomes), name=f"{backend}-{i}", daemon=True)
        for i, slot in enumerate(slots)
    ]
    for thread in threads:
        thread.start()
    last_error: LipsyncError | None = None
    running = len(threads)
    try:
        while running:
            try:
                item = outcomes.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _SlotDone):
                running -= 1
                continue
            last_error = item.lipsync_error or last_error
            handle(item)
    except BaseException:
        for slot in slots:
            slot.interrupt()
        for thread in threads:
            thread.join(_JOIN_S)
        while not outcomes.empty():
            if isinstance(item := outcomes.get_nowait(), Outcome):
                handle(item)
        raise
    finally:
        starts[backend] = sum(slot.renderer.starts for slot in slots)
    # Every slot gave up starting its worker: the jobs left fail with the reason.
    reason = last_error or LipsyncError(ErrorCode.WORKER_CRASHED, f"no {backend} worker could start")
    while not todo.empty():
        handle(Outcome.failed(todo.get_nowait(), reason))


def run_local(
    groups: dict[str, list[Job]],
    where: list[WorkerSlot],
    handle: OutcomeHandler,
    starts: dict[str, int],
    *,
    log_dir: Path | None = None,
) -> None:
    """Render every group with up to ``len(where)`` workers each, counting worker starts per backend in
    ``starts`` (filled in even when interrupted)."""
    for backend, jobs in groups.items():
        _run_group(backend, jobs, where, handle, starts, log_dir)
