"""The server's core, free of HTTP: submit jobs, render them on warm workers, cancel, prune, drain.

Every render goes through `Renderer.render` (the path ``lipsync run`` and ``lipsync batch`` take); a job
renders into its own folder under the server's home and its output appears there atomically.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from lipsync_kit import protocol

from ..catalogue import MODELS, get_model
from ..envs import BackendEnv
from ..errors import ErrorCode, LipsyncError
from ..output import PlainReporter
from ..render import OutputTarget, RenderRequest
from .config import ServeConfig
from .hub import Hub
from .pool import Lane, Slot
from .store import ACTIVE, FINISHED, JobStore

__all__ = ["JobSpec", "Service"]

_PRUNE_EVERY_S: Final = 300.0


@dataclass(frozen=True)
class JobSpec:
    """A checked submission: the model, its resolved options and the input files on the server."""

    model: str
    face: str
    audio: str
    options: dict[str, Any] = field(default_factory=dict)  # `model_options.resolve_options` output
    seed: int | None = None
    format: str = "mp4"  # mp4 | mkv
    uploaded: bool = True  # the inputs live in the job folder (removed when the job is pruned)


def error_body(err: LipsyncError) -> dict[str, Any]:
    return {"code": err.code, "message": err.message, "hint": err.hint}


class Service:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        config.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(config.database)
        self.recovered = self.store.recover()
        for job_id in self.recovered:  # whatever a stopped render left is not an output
            for leftover in (config.jobs_dir / job_id).glob("*output.*"):
                leftover.unlink(missing_ok=True)
        self.hub = Hub()
        self.lanes: dict[str, Lane] = {}
        self.draining = False
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self.prune()

    # ------------------------------------------------------------------------------- jobs

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:16]
        folder = self.config.jobs_dir / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def output_path(self, job_id: str, fmt: str) -> Path:
        return self.config.jobs_dir / job_id / f"output.{fmt}"

    def submit(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """Queue a checked job (its folder made by `new_job_dir`)."""
        if self.draining:
            raise LipsyncError(ErrorCode.INTERRUPTED, "the server is shutting down and takes no new jobs")
        model = get_model(spec.model)
        self.store.add(job_id, model.name, asdict(spec))
        self.hub.update(job_id, status="queued")
        self._lane(model.backend).submit(job_id)
        self.maybe_prune()
        job = self.view(job_id)
        assert job is not None
        return job

    def _lane(self, backend: str) -> Lane:
        with self._lock:
            lane = self.lanes.get(backend)
            if lane is None:
                lane = Lane(
                    backend,
                    self._run_job,
                    workers=self.config.workers,
                    device=self.config.device,
                    idle_timeout_s=self.config.idle_timeout_s,
                )
                self.lanes[backend] = lane
            return lane

    def _run_job(self, slot: Slot, job_id: str) -> None:
        """Render one job in a slot's thread; every outcome lands in the store."""
        row = self.store.get(job_id)
        if row is None or not self.store.started(job_id):  # cancelled or interrupted while queued
            self.hub.ended(job_id)
            return
        self.hub.update(job_id, status="running")
        spec = JobSpec(**row["request"])

        def on_event(message: protocol.Message) -> None:
            if isinstance(message, protocol.Progress):
                worker = slot.renderer.worker
                pid = worker.ready.pid if worker is not None and worker.ready is not None else None
                progress = {"stage": message.stage, "done": message.done, "total": message.total}
                self.hub.update(job_id, progress=progress, worker_pid=pid)
            elif isinstance(message, protocol.Log) and message.level in ("warning", "error"):
                self.hub.warn(job_id, message.message)

        output = self.output_path(job_id, spec.format)
        request = RenderRequest.from_options(
            options=spec.options,
            model=spec.model,
            face=Path(spec.face),
            audio=Path(spec.audio),
            output=OutputTarget(output, spec.format),
            device=self.config.device,
            seed=spec.seed,
        )
        started = time.perf_counter()
        try:
            BackendEnv.named(get_model(spec.model).backend).ensure(PlainReporter(quiet=True))
            record = slot.renderer.render(request, on_event)
        except LipsyncError as err:
            status, failure = "error", err
            if slot.cancelled and self.draining:
                status = "interrupted"
                failure = LipsyncError(ErrorCode.INTERRUPTED, "the server shut down during the render")
            elif slot.cancelled:
                status = "cancelled"
                failure = LipsyncError(ErrorCode.INTERRUPTED, "cancelled; the partial output was removed")
            output.unlink(missing_ok=True)
            self.store.finish(job_id, status, error=error_body(failure))
        except Exception as err:  # a bug: the job fails, the server goes on
            output.unlink(missing_ok=True)
            failure = LipsyncError(ErrorCode.INTERNAL, f"{type(err).__name__}: {err}")
            self.store.finish(job_id, "error", error=error_body(failure))
        else:
            record["seconds"] = {k: round(v, 4) for k, v in record["seconds"].items()}
            record["seconds"]["total"] = round(time.perf_counter() - started, 4)
            if not self.store.finish(job_id, "ok", result=record):  # cancelled as it ended
                output.unlink(missing_ok=True)
        finally:
            self.hub.ended(job_id)
            self._discard_inputs(job_id, spec)

    def _discard_inputs(self, job_id: str, spec: JobSpec) -> None:
        if spec.uploaded:
            shutil.rmtree(self.config.jobs_dir / job_id / "inputs", ignore_errors=True)

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a queued or running job; a finished one stays as it is. None for an unknown id."""
        row = self.store.get(job_id)
        if row is None:
            return None
        if row["status"] == "queued":
            err = LipsyncError(ErrorCode.INTERRUPTED, "cancelled before it started")
            if self.store.finish(job_id, "cancelled", error=error_body(err)):
                self.hub.ended(job_id)
                self._discard_inputs(job_id, JobSpec(**row["request"]))
        elif row["status"] == "running":
            for lane in list(self.lanes.values()):
                lane.cancel(job_id)
            deadline = time.monotonic() + 30
            while (job := self.store.get(job_id)) and job["status"] in ACTIVE and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.view(job_id)

    # ------------------------------------------------------------------------------ views

    def view(self, job_id: str) -> dict[str, Any] | None:
        row = self.store.get(job_id)
        return self._view(row) if row is not None else None

    def recent(self, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        return [self._view(row) for row in self.store.recent(limit, status)]

    def _view(self, row: dict[str, Any]) -> dict[str, Any]:
        """A job as the API shows it: status, progress, timings, the render record or the error."""
        live = self.hub.get(row["id"]) if row["status"] in ACTIVE else None
        request = row["request"]
        created, started, finished = row["created"], row["started"], row["finished"]
        end = finished or time.time()
        output = None
        if row["status"] == "ok":
            output = f"/v1/jobs/{row['id']}/output"
        return {
            "id": row["id"],
            "status": row["status"],
            "model": row["model"],
            "created": created,
            "started": started,
            "finished": finished,
            "queued_seconds": round((started or end) - created, 4),
            "run_seconds": round(end - started, 4) if started else None,
            "progress": live.progress if live else None,
            "worker_pid": live.worker_pid if live else (row["result"] or {}).get("worker_pid"),
            "options": request["options"],
            "seed": request["seed"],
            "format": request["format"],
            "result": row["result"],
            "error": row["error"],
            "output_url": output,
            "warnings": list(live.warnings) if live else [],
            "seq": live.seq if live else None,
        }

    def output_file(self, job_id: str) -> Path | None:
        row = self.store.get(job_id)
        if row is None or row["status"] != "ok":
            return None
        path = self.output_path(job_id, row["request"]["format"])
        return path if path.is_file() else None

    def readiness(self) -> dict[str, Any]:
        counts = self.store.counts()
        return {
            "ready": not self.draining,
            "draining": self.draining,
            "queued": counts.get("queued", 0),
            "running": counts.get("running", 0),
            "workers": {backend: lane.warm() for backend, lane in self.lanes.items()},
            "models": list(MODELS),
        }

    # ---------------------------------------------------------------------------- upkeep

    def maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune > _PRUNE_EVERY_S:
            self.prune()

    def prune(self) -> list[str]:
        """Delete finished jobs (rows and folders) past the age, count or storage limits."""
        self._last_prune = time.monotonic()
        cutoff = time.time() - self.config.keep_hours * 3600
        gone = self.store.prunable(cutoff, self.config.max_jobs)
        gone += self._over_storage(set(gone))
        for job_id in gone:
            shutil.rmtree(self.config.jobs_dir / job_id, ignore_errors=True)
        self.store.delete(gone)
        known = {row["id"] for row in self.store.recent(limit=-1)}
        for folder in self.config.jobs_dir.iterdir():  # folders of submissions refused before queueing
            if folder.name not in known and time.time() - folder.stat().st_mtime > 3600:
                shutil.rmtree(folder, ignore_errors=True)
        return gone

    def _over_storage(self, going: set[str]) -> list[str]:
        """The oldest finished jobs to delete so that the job folders fit ``max_storage_bytes``."""
        sizes = {folder.name: _size(folder) for folder in self.config.jobs_dir.iterdir()}
        total = sum(size for name, size in sizes.items() if name not in going)
        extra: list[str] = []
        for row in reversed(self.store.recent(limit=-1)):  # oldest first
            if total <= self.config.max_storage_bytes:
                break
            if row["status"] in FINISHED and row["id"] not in going:
                extra.append(row["id"])
                total -= sizes.get(row["id"], 0)
        return extra

    def begin_drain(self) -> None:
        """SIGTERM: take no new jobs; the queued ones become ``interrupted``."""
        if self.draining:
            return
        self.draining = True
        err = error_body(LipsyncError(ErrorCode.INTERRUPTED, "the server shut down before the job started"))
        for row in self.store.recent(limit=-1, status="queued"):
            if self.store.finish(row["id"], "interrupted", error=err):
                self.hub.ended(row["id"])

    def shutdown(self, timeout: float | None = None) -> None:
        """Let running jobs finish for up to ``timeout`` s, interrupt the rest, stop every worker."""
        self.begin_drain()
        deadline = time.monotonic() + (self.config.drain_timeout_s if timeout is None else timeout)
        while any(lane.running() for lane in self.lanes.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for lane in self.lanes.values():
            lane.interrupt()
        for lane in self.lanes.values():
            lane.stop(timeout=30)
        self.store.close()


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
