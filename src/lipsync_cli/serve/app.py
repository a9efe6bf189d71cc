"""The FastAPI app: the versioned REST API (``/v1``), server-sent progress, downloads and the web page."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..catalogue import MODELS, model_weight_files
from ..envs import BackendEnv
from ..errors import ErrorCode, LipsyncError
from ..model_options import option_specs
from ..weights import WeightsStore
from .auth import TokenGate
from .checks import allowed_path, check_submission
from .config import ServeConfig
from .service import Service
from .statuses import ApiCode, ApiError, http_status
from .store import FINISHED
from .uploads import FILE_FIELDS, TooLarge, read_form

__all__ = ["create_app"]

log = logging.getLogger("lipsync.serve")

WEB_DIR: Final = Path(__file__).resolve().parent / "web"
_EVENT_POLL_S: Final = 0.1
_KEEPALIVE_S: Final = 15.0
_MAX_JSON_BYTES: Final = 64 * 1024

_SUBMIT_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "image", "audio"],
                    "properties": {
                        "model": {"type": "string", "enum": list(MODELS)},
                        "image": {"type": "string", "format": "binary", "description": "portrait"},
                        "audio": {"type": "string", "format": "binary", "description": "speech"},
                        "options": {"type": "string", "description": "JSON object of model options"},
                        "seed": {"type": "integer"},
                        "format": {"type": "string", "enum": ["mp4", "mkv"]},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "image", "audio"],
                    "description": "paths under --allow-paths instead of uploads",
                    "properties": {
                        "model": {"type": "string", "enum": list(MODELS)},
                        "image": {"type": "string"},
                        "audio": {"type": "string"},
                        "options": {"type": "object"},
                        "seed": {"type": "integer"},
                        "format": {"type": "string", "enum": ["mp4", "mkv"]},
                    },
                }
            },
        },
    }
}


def _error_response(err: LipsyncError, status: int | None = None) -> JSONResponse:
    body = {"ok": False, "code": err.code, "message": err.message, "hint": err.hint}
    return JSONResponse(body, status_code=status or http_status(err.code))


def _models(config: ServeConfig) -> dict[str, Any]:
    store = WeightsStore()
    models = []
    for model in MODELS.values():
        options = []
        for option in option_specs(model).values():
            entry = asdict(option)
            entry["default"] = model.defaults.get(option.name, option.default)
            entry["flag"] = option.flag
            options.append(entry)
        models.append(
            {
                "name": model.name,
                "backend": model.backend,
                "description": model.description,
                "env": BackendEnv.named(model.backend).status(),
                "weights": {wf.name: store.status(wf) for wf in model_weight_files(model)},
                "options": options,
            }
        )
    server = {
        "version": __version__,
        "device": config.device,
        "allow_paths": bool(config.allow_paths),
        "max_upload_bytes": config.max_upload_bytes,
    }
    return {"models": models, "server": server}


def create_app(config: ServeConfig, service: Service | None = None) -> FastAPI:
    """The app for one server; ``service`` is made here unless given (it is closed with the app)."""
    svc = service or Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if svc.recovered:
            log.warning("%d job(s) left by the last server were marked interrupted", len(svc.recovered))
        yield
        await run_in_threadpool(svc.shutdown)

    app = FastAPI(
        title="lipsync",
        version=__version__,
        summary="Lip-synced talking-head videos from a portrait and a speech track, on warm workers.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = svc
    if config.token:
        app.add_middleware(TokenGate, token=config.token)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

    @app.exception_handler(LipsyncError)
    async def _lipsync_error(request: Request, err: LipsyncError) -> JSONResponse:
        return _error_response(err)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/v1/health", tags=["server"])
    async def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"ok": True, "version": __version__}

    @app.get("/v1/ready", tags=["server"])
    async def ready() -> JSONResponse:
        """Readiness: 200 while jobs are taken, 503 while draining; queue and warm workers."""
        state = svc.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get("/v1/models", tags=["models"])
    async def models() -> dict[str, Any]:
        """Every model with its env and weights state and its options (the CLI's option table)."""
        return await run_in_threadpool(_models, config)

    @app.post("/v1/jobs", status_code=201, tags=["jobs"], openapi_extra=_SUBMIT_BODY)
    async def submit(request: Request) -> JSONResponse:
        """Submit a render: multipart upload of ``image`` + ``audio``, or JSON with paths (--allow-paths)."""
        if svc.draining:
            raise ApiError(ApiCode.DRAINING, "the server is shutting down and takes no new jobs")
        content_type = request.headers.get("content-type", "")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_upload_bytes:
            raise ApiError(ApiCode.TOO_LARGE, _too_large(config))
        job_id, folder = svc.new_job_dir()
        try:
            if content_type.split(";")[0].strip() == "application/json":
                spec = await _json_submission(request, config)
            else:
                try:
                    form = await read_form(
                        content_type, request.stream(), folder / "inputs", config.max_upload_bytes
                    )
                except TooLarge:
                    raise ApiError(ApiCode.TOO_LARGE, _too_large(config)) from None
                missing = [name for name in FILE_FIELDS if name not in form.files]
                if missing:
                    raise LipsyncError(
                        ErrorCode.BAD_INPUT if "image" in missing else ErrorCode.BAD_AUDIO,
                        f"the upload has no {' and no '.join(missing)} file",
                    )
                try:
                    spec = await run_in_threadpool(
                        check_submission,
                        form.fields,
                        form.files["image"],
                        form.files["audio"],
                        config,
                        uploaded=True,
                    )
                except LipsyncError as err:
                    raise form.public(err) from None
            job = await run_in_threadpool(svc.submit, job_id, spec)
        except LipsyncError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("job %s queued (%s)", job_id, spec.model)
        return JSONResponse(job, status_code=201, headers={"location": f"/v1/jobs/{job_id}"})

    @app.get("/v1/jobs", tags=["jobs"])
    async def jobs(limit: int = Query(50, ge=1, le=1000), status: str | None = Query(None)) -> dict[str, Any]:
        """Recent jobs, newest first."""
        return {"jobs": await run_in_threadpool(svc.recent, limit, status)}

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    async def job(job_id: str) -> dict[str, Any]:
        """One job: status, progress, timings, and the ``--json`` record or the error."""
        return _found(await run_in_threadpool(svc.view, job_id), job_id)

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"])
    async def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (the render stops; no partial file is left)."""
        return _found(await run_in_threadpool(svc.cancel, job_id), job_id)

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    async def events(job_id: str, request: Request) -> StreamingResponse:
        """Server-sent events: ``job`` with the job at every change, then ``end`` with the final job."""
        _found(await run_in_threadpool(svc.view, job_id), job_id)
        return StreamingResponse(
            _event_stream(svc, job_id, request),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @app.get("/v1/jobs/{job_id}/output", tags=["jobs"])
    async def output(job_id: str) -> FileResponse:
        """The rendered video; range requests let a browser seek."""
        path = await run_in_threadpool(svc.output_file, job_id)
        if path is None:
            raise ApiError(ApiCode.NOT_FOUND, f"job {job_id} has no output (unknown, not done or failed)")
        media = "video/mp4" if path.suffix == ".mp4" else "video/x-matroska"
        return FileResponse(path, media_type=media, filename=f"lipsync-{job_id}{path.suffix}")

    return app


def _too_large(config: ServeConfig) -> str:
    return f"the upload is over this server's limit of {config.max_upload_bytes / 2**20:g} MiB"


def _found(job: dict[str, Any] | None, job_id: str) -> dict[str, Any]:
    if job is None:
        raise ApiError(ApiCode.NOT_FOUND, f"no job {job_id}")
    return job


async def _json_submission(request: Request, config: ServeConfig) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_JSON_BYTES:
            raise ApiError(ApiCode.TOO_LARGE, f"a JSON submission is at most {_MAX_JSON_BYTES} bytes")
    try:
        fields = json.loads(body)
    except ValueError as err:
        raise LipsyncError(ErrorCode.BAD_OPTION, f"the body is not JSON: {err}") from None
    if not isinstance(fields, dict):
        raise LipsyncError(ErrorCode.BAD_OPTION, "the body must be a JSON object")
    for name, code in (("image", ErrorCode.BAD_INPUT), ("audio", ErrorCode.BAD_AUDIO)):
        if not isinstance(fields.get(name), str) or not fields[name]:
            raise LipsyncError(code, f"the submission names no {name} path")
    face = allowed_path(fields["image"], config, "image")
    audio = allowed_path(fields["audio"], config, "audio")
    return await run_in_threadpool(check_submission, fields, face, audio, config, uploaded=False)


def _sse(kind: str, job: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(job)}\n\n".encode()


async def _event_stream(svc: Service, job_id: str, request: Request) -> AsyncIterator[bytes]:
    """Every step of the job in order (``job`` events), then ``end`` with the final job.

    The store is read before the steps: a job that has ended has all its steps in the hub by then.
    """
    seq, idle, first = 0, 0.0, True
    while True:
        job = await run_in_threadpool(svc.view, job_id)
        if job is None:
            return
        steps = svc.hub.since(job_id, seq)
        for step in steps:
            seq = step.seq
            yield _sse("job", {**job, "status": step.status, "progress": step.progress,
                               "worker_pid": step.worker_pid, "seq": step.seq})  # fmt: skip
        if first and not steps:
            yield _sse("job", job)
        first = False
        if job["status"] in FINISHED:
            yield _sse("end", job)
            return
        if steps:
            idle = 0.0
        elif idle >= _KEEPALIVE_S:
            idle = 0.0
            yield b": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(_EVENT_POLL_S)
        idle += _EVENT_POLL_S
