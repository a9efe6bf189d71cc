"""The same batch on a Ray cluster: one actor per GPU (or per worker on CPUs), each owning a warm slot.

Each actor builds its backend env on its own node with the host's env builder and runs the backend
worker as a child process, so Ray lives only in the host environment (the ``ray`` extra) and never in
a backend env. Inputs and outputs must be on storage every node sees. Ray is imported lazily: without
the extra, ``--ray`` fails with ``ray_unavailable``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, Final

from ..envs import BackendEnv
from ..errors import ErrorCode, LipsyncError
from ..output import PlainReporter
from .manifest import Job
from .plan import WorkerSlot, cpu_workers
from .pool import OutcomeHandler
from .slot import Outcome, Slot

__all__ = ["LOCAL", "import_ray", "run_ray"]

LOCAL: Final = "local"  # a private Ray instance on this machine, bound to the loopback interface
_POLL_S: Final = 0.5
_STOP_WAIT_S: Final = 30.0
_LOCAL_OBJECT_STORE: Final = 128 << 20  # jobs and outcomes are small; the default takes 30 % of RAM


class BackendActor:
    """Runs inside a Ray actor: builds the backend env on this node, then renders jobs on a warm slot."""

    def __init__(self, backend: str, device: str) -> None:
        self.slot: Slot | None = None
        self.setup_error: LipsyncError | None = None
        try:
            BackendEnv.named(backend).ensure(PlainReporter(quiet=True))
            self.slot = Slot(backend, WorkerSlot(device))  # Ray has set CUDA_VISIBLE_DEVICES for this actor
        except LipsyncError as err:
            self.setup_error = err  # reported with each job, so the actor never dies in a restart loop

    def render(self, job: Job) -> Outcome:
        if self.slot is None:
            assert self.setup_error is not None
            return Outcome.failed(job, self.setup_error)
        return self.slot.run(job)

    def starts(self) -> int:
        return self.slot.renderer.starts if self.slot else 0

    def interrupt(self) -> None:
        if self.slot is not None:
            self.slot.interrupt()

    def close(self) -> None:
        if self.slot is not None:
            self.slot.close()


def import_ray(address: str) -> Any:
    """The ``ray`` module, with the environment set for this address; ``ray_unavailable`` without it."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # never upload the working dir to workers
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == LOCAL:
        # Read when Ray is imported: node addresses and listening sockets stay on 127.0.0.1.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise LipsyncError(
            ErrorCode.RAY_UNAVAILABLE,
            "--ray needs Ray in lipsync's own environment",
            hint="pip install 'lipsync-cli[ray]'   (or: uv sync --extra ray)",
        ) from None
    return ray


def _connect(ray: Any, address: str) -> None:
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == LOCAL:
        options |= {
            "include_dashboard": False,
            "object_store_memory": _LOCAL_OBJECT_STORE,
            "_node_ip_address": "127.0.0.1",
        }
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **options)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError or ValueError for a bad address
        raise LipsyncError(
            ErrorCode.RAY_UNAVAILABLE,
            f"cannot start or reach Ray at {address}: {err}",
            hint="--ray local starts a private instance; --ray ADDRESS joins a running cluster",
        ) from err
    # Ray's core replaces the SIGTERM handler with one that aborts; keep stopping cleanly instead.
    signal.signal(signal.SIGTERM, sigterm)


def _actor_count(ray: Any, device: str, workers: int | None, jobs: int) -> tuple[int, dict[str, float]]:
    """How many actors, and the resources each asks for: a GPU each (a share when there are more
    actors than GPUs, so none waits forever for one), else a CPU."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if device.strip().lower() in ("auto", "cuda") and gpus >= 1:
        count = min(workers or int(gpus), jobs)
        return count, {"num_gpus": min(1.0, gpus / count)}
    return min(workers or cpu_workers(), jobs), {"num_cpus": 1}


def _run_group(
    ray: Any,
    backend: str,
    jobs: list[Job],
    device: str,
    workers: int | None,
    handle: OutcomeHandler,
    starts: dict[str, int],
) -> None:
    count, resources = _actor_count(ray, device, workers, len(jobs))
    # max_concurrency 2: `interrupt` can run while `render` is busy.
    actor_class = ray.remote(max_concurrency=2, **resources)(BackendActor)
    make: Callable[[], Any] = lambda: actor_class.remote(backend, device)  # noqa: E731
    actors = [make() for _ in range(count)]
    todo = list(reversed(jobs))
    in_flight: dict[Any, tuple[Any, Job, float]] = {}

    def submit(actor: Any) -> None:
        if todo:
            job = todo.pop()
            in_flight[actor.render.remote(job)] = (actor, job, time.perf_counter())

    for actor in actors:
        submit(actor)
    starts[backend] = 0
    try:
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=_POLL_S)
            for ref in done:
                actor, job, started = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as err:  # the actor (or its node) died
                    outcome = Outcome.failed(
                        job,
                        LipsyncError(ErrorCode.WORKER_CRASHED, f"the Ray actor for {backend} died: {err}"),
                        time.perf_counter() - started,
                    )
                    actors.remove(actor)
                    actor = make()
                    actors.append(actor)
                handle(outcome)
                submit(actor)
    except BaseException:
        for actor in actors:
            actor.interrupt.remote()
        refs = list(in_flight)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=_STOP_WAIT_S)
        for ref in ready:
            with contextlib.suppress(ray.exceptions.RayError):
                handle(ray.get(ref))
        raise
    finally:
        for actor in actors:
            try:
                starts[backend] += ray.get(actor.starts.remote(), timeout=_STOP_WAIT_S)
                ray.get(actor.close.remote(), timeout=_STOP_WAIT_S)
            except ray.exceptions.RayError:
                pass
            ray.kill(actor)


def run_ray(
    address: str,
    groups: dict[str, list[Job]],
    device: str,
    workers: int | None,
    handle: OutcomeHandler,
    starts: dict[str, int],
) -> None:
    """Render every group on Ray, counting worker starts per backend in ``starts``."""
    ray = import_ray(address)
    _connect(ray, address)
    try:
        for backend, jobs in groups.items():
            _run_group(ray, backend, jobs, device, workers, handle, starts)
    finally:
        ray.shutdown()
