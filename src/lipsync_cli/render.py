"""Rendering: check a request, set up its env and weights, have a backend worker render it, report.

`render` is the library call behind ``lipsync run``; `Renderer` keeps one worker warm across many
requests, which is what ``lipsync batch`` (locally or inside a Ray actor) builds on. Both share the
steps below, so a batch job and a single run produce the same record.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipsync_kit import protocol
from lipsync_kit.files import container_for, find_partials

from . import paths
from .catalogue import CHECKPOINTS, Model, get_model, weight_file
from .checks import (
    REFERENCE_OPTIONS,
    check_audio,
    check_face,
    check_face_size,
    check_not_an_input,
    check_reference,
)
from .envs import BackendEnv
from .errors import ErrorCode, LipsyncError
from .folders import check_folder, make_folders, remove_empty
from .model_options import backend_options, request_fields, weight_options
from .output import Reporter, Task
from .weights import WeightsStore, resolve_custom
from .worker import EventHandler, WorkerClient

__all__ = [
    "OutputTarget",
    "RenderRequest",
    "Renderer",
    "StageProgress",
    "check_request",
    "container_for",
    "render",
    "render_params",
    "resolve_output",
    "resolve_weights",
]


@dataclass(frozen=True)
class OutputTarget:
    """Where the video goes: a file, a PNG frame pattern, or a stream on the host's stdout."""

    path: Path | None  # None for stdout
    format: str  # mp4 | mkv | png

    @property
    def is_stream(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class RenderRequest:
    model: str
    face: Path
    audio: Path
    output: OutputTarget
    device: str = "auto"
    overwrite: bool = False
    fps: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the model's own options
    # Weight options that were given (``checkpoint``, ``detector_checkpoint``, ...): a named checkpoint of
    # the catalogue or the path of a user's own file; the others come from the weights store.
    weights: dict[str, str] = field(default_factory=dict)
    seed: int | None = None  # for models that sample; sent to every backend, deterministic ones ignore it

    @classmethod
    def from_options(cls, *, options: dict[str, Any], **fields: Any) -> RenderRequest:
        """A request from options that `model_options.resolve_options` checked; host fields are lifted out."""
        host_fields, weight_names = request_fields(), weight_options()
        backend_options = {k: v for k, v in options.items() if k not in host_fields}
        weights = {k: str(v) for k, v in options.items() if k in weight_names and v is not None}
        return cls(**fields, fps=options.get("fps"), weights=weights, options=backend_options)


def resolve_output(value: str, container: str | None, overwrite: bool) -> OutputTarget:
    """Classify ``-o`` and check it can be written before any work starts; missing folders are made
    later, by `render`, right before the worker writes."""
    if value == "-":
        return OutputTarget(None, container or "mp4")
    path = Path(value).expanduser().absolute()
    if "%" in path.name:
        if path.suffix.lower() != ".png":
            raise LipsyncError(ErrorCode.BAD_OPTION, f"frame patterns must end in .png: {value}")
        target = OutputTarget(path, "png")
    else:
        fmt = container or container_for(path)
        if fmt is None:
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"cannot tell the container of {value!r} from its extension",
                hint="use .mp4 or .mkv, a PNG pattern such as frames/%05d.png, or - for stdout",
            )
        target = OutputTarget(path, fmt)
        if path.is_dir():
            raise LipsyncError(
                ErrorCode.OUTPUT_UNWRITABLE,
                f"the output {path} is a folder",
                hint=f"name a file in it, such as {path / ('out.' + fmt)}",
            )
        if path.exists() and not overwrite:
            raise LipsyncError(
                ErrorCode.OUTPUT_EXISTS, f"{path} already exists", hint="pass --overwrite to replace it"
            )
    check_folder(path.parent)
    return target


def check_request(request: RenderRequest) -> None:
    """Every check of a request's files that can run before anything heavy (see `checks`)."""
    size = check_face(request.face)
    check_audio(request.audio)
    inputs = {"--image": request.face, "--audio": request.audio}
    for option in REFERENCE_OPTIONS:
        if (value := request.options.get(option)) is not None:
            check_reference(Path(value), option)
            inputs["--" + option.replace("_", "-")] = Path(value)
    check_face_size(request.model, size, request.options)
    if request.output.path is not None:
        check_not_an_input(request.output.path, inputs)


def resolve_weights(model: Model, request: RenderRequest, reporter: Reporter) -> dict[str, dict[str, str]]:
    """Make sure every file the options use is present and verified; return role -> {path, sha256 | "custom"}.

    A role these options do not use (the detector with ``--box``, the enhancer without ``--enhancer``) is
    left out, even when its file was given: the backend loads only the roles it is sent.
    """
    store = WeightsStore()
    named = CHECKPOINTS.get(model.name, ())
    options = {**model.defaults, **request.options, **model.variant}
    resolved: dict[str, dict[str, str]] = {}
    for role in model.roles:
        given = request.weights.get(role.option)
        name = role.pick({**options, role.option: given if given in named else None})
        if name is None:
            continue
        if given is None or given in named:
            wf = weight_file(name)
            resolved[role.role] = {"path": str(store.ensure(wf, reporter)), "sha256": wf.sha256}
        else:
            path = resolve_custom(Path(given).expanduser().absolute())
            resolved[role.role] = {"path": str(path), "sha256": "custom"}
    return resolved


class StageProgress:
    """Turns the worker's ``progress`` events into one progress task per stage."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._stack = ExitStack()
        self._stage: str | None = None
        self._task: Task | None = None

    def __call__(self, message: protocol.Message) -> None:
        if isinstance(message, protocol.Progress):
            if message.stage != self._stage:
                self.close()
                self._stage = message.stage
                self._task = self._stack.enter_context(self.reporter.task(message.stage, message.total))
            assert self._task is not None
            self._task.update(message.done, message.total)
        elif isinstance(message, protocol.Log):
            (self.reporter.warn if message.level == "warning" else self.reporter.info)(message.message)

    def close(self) -> None:
        self._stack.close()
        self._stack = ExitStack()
        self._stage = None


def render_params(model: Model, request: RenderRequest, weights: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The ``render`` request's params: absolute paths and options only."""
    return {
        **request.options,
        **model.variant,  # the variant's fixed options win
        "face": str(request.face),
        "audio": str(request.audio),
        "output": None if request.output.is_stream else str(request.output.path),
        "format": request.output.format,
        "overwrite": request.overwrite,
        "fps": request.fps,
        "seed": request.seed,
        "weights": {role: entry["path"] for role, entry in weights.items()},
        "cache_dir": str(paths.cache_dir()),
    }


def _remove_partials(output: OutputTarget) -> None:
    """Remove the hidden partial file a killed worker left next to a video output.

    A worker that exits normally removes its own; one killed outright cannot. PNG frames are staged
    in a folder that other patterns in the same folder share, so they are left alone.
    """
    if output.path is None or output.format == "png":
        return
    for leftover in find_partials(output.path):
        with contextlib.suppress(OSError):
            leftover.unlink()


class Renderer:
    """A warm worker of one backend that renders requests one after another.

    The worker starts on the first request, once that request's weights are in place, and a worker that
    crashed is started again on the next one; `starts` counts the starts. The backend env must be built.
    """

    def __init__(
        self,
        backend: str,
        reporter: Reporter,
        *,
        device: str = "auto",
        env_vars: dict[str, str] | None = None,
        log_dir: Path | None = None,
        stream_fd: int | None = None,
    ) -> None:
        self.env = BackendEnv.named(backend)
        self.reporter = reporter
        self.device = device
        self.env_vars = env_vars
        self.log_dir = log_dir
        self.stream_fd = stream_fd  # a descriptor the worker writes a streamed video to (``-o -``)
        self.worker: WorkerClient | None = None
        self.starts = 0
        self.failed_starts = 0  # in a row; a worker that cannot start will not start on the next try either
        self.interrupted = False

    def render(self, request: RenderRequest, on_event: EventHandler | None = None) -> dict[str, Any]:
        """Render one request and return its record (``lipsync run --json``); failures raise LipsyncError."""
        model = get_model(request.model)
        timings: dict[str, float] = {}
        mark = time.perf_counter()
        weights = resolve_weights(model, request, self.reporter)
        timings["weights"] = time.perf_counter() - mark
        params = render_params(model, request, weights)
        params["output_fd"] = self.stream_fd if request.output.is_stream else None
        if self.worker is None or not self.worker.alive:
            mark = time.perf_counter()
            self._start()
            timings["worker_start"] = time.perf_counter() - mark
        worker = self.worker
        assert worker is not None and worker.ready is not None
        if self.interrupted:  # stopped while the worker was starting
            raise LipsyncError(ErrorCode.INTERRUPTED, "interrupted before the render started")
        try:
            result = worker.render(params, on_event)
        except LipsyncError as err:
            if err.code == ErrorCode.WORKER_CRASHED:
                self.kill()  # the next request starts a fresh worker
                _remove_partials(request.output)
            raise
        stats = dict(result.stats)
        timings.update(stats.pop("seconds", {}))
        return {
            "ok": True,
            "output": result.output if result.output is not None else "-",
            "model": model.name,
            "backend": worker.ready.backend,
            "backend_version": worker.ready.version,
            "device": worker.ready.device,
            "worker_pid": worker.ready.pid,
            **stats,
            "seconds": timings,
            "weights": {role: {"path": e["path"], "sha256": e["sha256"]} for role, e in weights.items()},
        }

    def _start(self) -> None:
        self.kill()
        worker = WorkerClient(self.env, device=self.device, log_dir=self.log_dir, env_vars=self.env_vars)
        self.worker = worker
        self.starts += 1
        try:
            worker.start(pass_fds=(self.stream_fd,) if self.stream_fd is not None else ())
        except BaseException:
            self.failed_starts += 1
            self.kill()
            raise
        self.failed_starts = 0
        self._check_options(worker)

    def _check_options(self, worker: WorkerClient) -> None:
        """The worker must read the option table this host checks requests against (a stale env does not)."""
        assert worker.ready is not None
        announced = worker.ready.capabilities.get("options")
        declared = [option.name for option in backend_options(self.env.name)]
        if announced != declared:
            self.kill()
            raise LipsyncError(
                ErrorCode.PROTOCOL,
                f"the {self.env.name} worker declares the options {announced}, this host {declared}",
                hint=f"rebuild its environment: lipsync env build {self.env.name} --force",
            )

    def interrupt(self) -> None:
        """Stop the worker from another thread; the request in progress fails and leaves no output."""
        self.interrupted = True
        if (worker := self.worker) is not None:
            worker.terminate()

    def close(self) -> None:
        """Shut the worker down after its current request."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def kill(self) -> None:
        """Stop the worker now; a render in progress removes its partial output."""
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self.kill()


def render(request: RenderRequest, reporter: Reporter) -> dict[str, Any]:
    """Render one clip and return the result record (the ``--json`` payload).

    Missing output folders are made right before the worker starts and removed again if the render fails.
    A stream whose reader went away (``-o - | head``) fails with ``broken_pipe``.
    """
    started = time.perf_counter()
    model = get_model(request.model)
    check_request(request)
    timings = {"validate": time.perf_counter() - started}

    mark = time.perf_counter()
    BackendEnv.named(model.backend).ensure(reporter)
    timings["env"] = time.perf_counter() - mark

    stream_fd = os.dup(1) if request.output.is_stream else None
    made = make_folders(request.output.path.parent) if request.output.path is not None else []
    progress = StageProgress(reporter)
    try:
        with Renderer(model.backend, reporter, device=request.device, stream_fd=stream_fd) as renderer:
            record = renderer.render(request, progress)
    except LipsyncError as err:
        remove_empty(made)
        if stream_fd is not None and _reader_gone(stream_fd):
            raise LipsyncError(ErrorCode.BROKEN_PIPE, "the reader of the output stream closed it") from err
        raise
    except BaseException:
        remove_empty(made)
        raise
    finally:
        progress.close()
        if stream_fd is not None:
            os.close(stream_fd)
    timings.update(record["seconds"])
    timings["total"] = time.perf_counter() - started
    record["seconds"] = {k: round(v, 4) for k, v in timings.items()}
    return record


def _reader_gone(fd: int) -> bool:
    """Whether the pipe or socket ``fd`` writes to has no reader any more (a file never loses it)."""
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
