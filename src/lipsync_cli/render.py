"""One render, start to finish: validate, set up the env and weights, run the worker, report.

This is the library call behind ``lipsync run``; the CLI only parses options into a `RenderRequest`.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipsync_kit import protocol
from lipsync_kit.probe import probe

from .catalogue import CHECKPOINTS, Model, get_model, weight_file
from .envs import BackendEnv
from .errors import ErrorCode, LipsyncError
from .output import Reporter, Task
from .weights import WeightsStore, resolve_custom
from .worker import WorkerClient

__all__ = ["OutputTarget", "RenderRequest", "render", "resolve_output"]

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "mkv"}


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
    checkpoint: str | None = None  # a named checkpoint of the catalogue or a path to a custom one
    detector_checkpoint: Path | None = None


def resolve_output(value: str, container: str | None, overwrite: bool) -> OutputTarget:
    """Classify ``-o`` and check it can be written before any work starts."""
    if value == "-":
        return OutputTarget(None, container or "mp4")
    path = Path(value).expanduser().absolute()
    if "%" in path.name:
        if path.suffix.lower() != ".png":
            raise LipsyncError(ErrorCode.BAD_OPTION, f"frame patterns must end in .png: {value}")
        target = OutputTarget(path, "png")
        folder = path.parent
    else:
        fmt = container or _CONTAINERS.get(path.suffix.lower())
        if fmt is None:
            raise LipsyncError(
                ErrorCode.BAD_OPTION,
                f"cannot tell the container of {value!r} from its extension",
                hint="use .mp4 or .mkv, a PNG pattern such as frames/%05d.png, or - for stdout",
            )
        target = OutputTarget(path, fmt)
        folder = path.parent
        if path.exists() and not overwrite:
            raise LipsyncError(
                ErrorCode.OUTPUT_EXISTS, f"{path} already exists", hint="pass --overwrite to replace it"
            )
    if not folder.is_dir():
        raise LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"the output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"the output folder {folder} is not writable")
    return target


def _check_inputs(face: Path, audio: Path) -> None:
    for path, code, what in (
        (face, ErrorCode.BAD_INPUT, "image/video"),
        (audio, ErrorCode.BAD_AUDIO, "audio"),
    ):
        if not path.is_file():
            raise LipsyncError(code, f"the {what} file {path} does not exist")
        if not os.access(path, os.R_OK):
            raise LipsyncError(code, f"the {what} file {path} is not readable")
    info = probe(face)
    if not info.has_video:
        raise LipsyncError(
            ErrorCode.BAD_INPUT, f"{face} is not an image or a video ({info.error or 'no picture'})"
        )
    info = probe(audio)
    if not info.has_audio:
        raise LipsyncError(
            ErrorCode.BAD_AUDIO,
            f"{audio} has no audio that ffmpeg can decode ({info.error or 'no audio stream'})",
        )


def _weights(model: Model, request: RenderRequest, reporter: Reporter) -> dict[str, dict[str, str]]:
    """Make sure every file is present and verified; return role -> {path, sha256 | "custom"}."""
    store = WeightsStore()
    resolved: dict[str, dict[str, str]] = {}
    named = CHECKPOINTS.get(model.name, ())
    if named:
        choice = request.checkpoint or named[0]
        if choice in named:
            wf = weight_file(f"{choice}.pth")
            resolved["checkpoint"] = {"path": str(store.ensure(wf, reporter)), "sha256": wf.sha256}
        else:
            path = resolve_custom(Path(choice).expanduser().absolute())
            resolved["checkpoint"] = {"path": str(path), "sha256": "custom"}
    for name in model.weights:
        wf = weight_file(name)
        if request.detector_checkpoint is not None and name.startswith("s3fd"):
            path = resolve_custom(request.detector_checkpoint.expanduser().absolute())
            resolved["detector"] = {"path": str(path), "sha256": "custom"}
        else:
            resolved["detector"] = {"path": str(store.ensure(wf, reporter)), "sha256": wf.sha256}
    return resolved


class _StageProgress:
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


def render(request: RenderRequest, reporter: Reporter) -> dict[str, Any]:
    """Render one clip and return the result record (the ``--json`` payload)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    model = get_model(request.model)
    _check_inputs(request.face, request.audio)
    timings["validate"] = time.perf_counter() - started

    mark = time.perf_counter()
    env = BackendEnv.named(model.backend)
    env.ensure(reporter)
    timings["env"] = time.perf_counter() - mark

    mark = time.perf_counter()
    weights = _weights(model, request, reporter)
    timings["weights"] = time.perf_counter() - mark

    params: dict[str, Any] = {
        **model.variant,
        **request.options,
        "face": str(request.face),
        "audio": str(request.audio),
        "output": None if request.output.is_stream else str(request.output.path),
        "format": request.output.format,
        "overwrite": request.overwrite,
        "fps": request.fps,
        "weights": {role: entry["path"] for role, entry in weights.items()},
    }
    stream_fd = os.dup(1) if request.output.is_stream else None
    progress = _StageProgress(reporter)
    try:
        mark = time.perf_counter()
        with WorkerClient(env, device=request.device) as worker:
            ready = worker.start(pass_fds=(stream_fd,) if stream_fd is not None else ())
            timings["worker_start"] = time.perf_counter() - mark
            params["output_fd"] = stream_fd
            result = worker.render(params, progress)
    finally:
        progress.close()
        if stream_fd is not None:
            os.close(stream_fd)
    stats = dict(result.stats)
    timings.update(stats.pop("seconds", {}))
    timings["total"] = time.perf_counter() - started
    return {
        "ok": True,
        "output": result.output if result.output is not None else "-",
        "model": model.name,
        "backend": ready.backend,
        "backend_version": ready.version,
        "device": ready.device,
        **stats,
        "seconds": {k: round(v, 4) for k, v in timings.items()},
        "weights": {role: {"path": e["path"], "sha256": e["sha256"]} for role, e in weights.items()},
    }
