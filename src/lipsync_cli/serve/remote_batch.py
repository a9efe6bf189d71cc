"""``lipsync batch --server``: the checked jobs of a manifest rendered by a running server.

Every job is uploaded and queued at once (the server's warm workers take them in order); each is then
followed to its end and its output downloaded beside its target and renamed into place. Outcomes reach
the batch's handler in the calling thread, as with the local pool. Ctrl-C cancels what is still open.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Final

from ..batch.manifest import Job
from ..batch.pool import OutcomeHandler
from ..batch.slot import Outcome
from ..errors import ErrorCode, LipsyncError
from .client import ServerClient

__all__ = ["run_remote"]

_FOLLOWERS: Final = 8  # jobs followed (and downloaded) at once


def _given(job: Job) -> dict[str, Any]:
    """The job's options under their option names, as a submission carries them."""
    request = job.request
    return {**request.options, **request.weights, "fps": request.fps}


def _follow(client: ServerClient, job: Job, job_id: str, started: float) -> Outcome:
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        done = client.wait(job_id)
        client.download_to(job_id, job.output, overwrite=True)  # the batch checked overwrite already
    except LipsyncError as err:
        return Outcome.failed(job, err, time.perf_counter() - started)
    except OSError as err:
        failure = LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"cannot write {job.output}: {err}")
        return Outcome.failed(job, failure, time.perf_counter() - started)
    record = {**done["result"], "output": str(job.output)}
    return Outcome(job, time.perf_counter() - started, rendered=record)


def run_remote(client: ServerClient, jobs: list[Job], handle: OutcomeHandler) -> None:
    """Render ``jobs`` on the server; every outcome goes to ``handle``."""
    open_jobs: dict[Future[Outcome], tuple[str, Job, float]] = {}
    with ThreadPoolExecutor(_FOLLOWERS) as pool:
        try:
            for job in jobs:
                started = time.perf_counter()
                try:
                    remote = _submit(client, job)
                except LipsyncError as err:
                    handle(Outcome.failed(job, err, time.perf_counter() - started))
                    continue
                future = pool.submit(_follow, client, job, remote["id"], started)
                open_jobs[future] = (remote["id"], job, started)
            while open_jobs:
                finished, _ = wait(list(open_jobs), timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    del open_jobs[future]
                    handle(future.result())
        except KeyboardInterrupt:
            for job_id, job, started in open_jobs.values():
                with contextlib.suppress(LipsyncError):
                    client.cancel(job_id)
                err = LipsyncError(ErrorCode.INTERRUPTED, "interrupted; the job was cancelled on the server")
                handle(Outcome.failed(job, err, time.perf_counter() - started))
            raise


def _submit(client: ServerClient, job: Job) -> dict[str, Any]:
    request = job.request
    return client.submit(
        job.model,
        request.face,
        request.audio,
        options=_given(job),
        seed=request.seed,
        fmt=request.output.format,
        device=request.device,
    )
