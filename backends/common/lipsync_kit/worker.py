"""The request loop every backend worker runs: read requests on stdin, answer JSON lines on stdout.

Stdout belongs to the protocol alone. At start the real stdout is kept for protocol lines and
file descriptor 1 is pointed at stderr, so whatever a library (or a child process such as
ffmpeg) prints can never corrupt the protocol stream.

A worker never outlives its host: on Linux the kernel sends it SIGTERM when the host dies
(``PR_SET_PDEATHSIG``), and anywhere the end of stdin in the middle of a render (the host closed
its end, or died) stops that render. SIGTERM unwinds the render, so the video writer kills its
ffmpeg and removes the partial output before the worker exits.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, Any, Final, Protocol

from . import protocol
from .errors import BackendError
from .protocol import ErrorCode

__all__ = ["Backend", "Reporter", "serve"]

_PR_SET_PDEATHSIG: Final = 1  # from <linux/prctl.h>


class Reporter:
    """Sends ``progress`` and ``log`` events for one request."""

    def __init__(self, send: Callable[[protocol.Message], None], request_id: str | None) -> None:
        self._send = send
        self.request_id = request_id

    def progress(self, stage: str, done: int, total: int) -> None:
        self._send(protocol.Progress(id=self.request_id or "", stage=stage, done=done, total=total))

    def log(self, message: str, level: str = "info") -> None:
        self._send(protocol.Log(level=level, message=message, id=self.request_id))


class Backend(Protocol):
    """What a backend package provides to `serve`."""

    name: str
    version: str
    device: str

    def capabilities(self) -> dict[str, Any]:
        """Static facts for the ``ready`` event (models, output formats …)."""
        ...

    def render(self, params: dict[str, Any], reporter: Reporter) -> tuple[str | None, dict[str, Any]]:
        """Render one request; return (output path or None for a stream, stats)."""
        ...


def _take_stdout() -> IO[str]:
    """Keep the real stdout for the protocol and send fd 1 (and `sys.stdout`) to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def _error_from_exception(err: BaseException, request_id: str | None) -> protocol.Error:
    if isinstance(err, BackendError):
        return protocol.Error(code=err.code, message=err.message, id=request_id, hint=err.hint)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return protocol.Error(
            code=ErrorCode.OUT_OF_MEMORY,
            message=f"out of memory: {err}",
            id=request_id,
            hint="lower --batch-size / --face-det-batch-size, or use a smaller input",
        )
    traceback.print_exception(err, file=sys.stderr)
    return protocol.Error(code=ErrorCode.INTERNAL, message=f"{type(err).__name__}: {err}", id=request_id)


class _Stopped(SystemExit):
    """SIGTERM: unwinds the render in progress, so open output writers kill ffmpeg and remove partials."""


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Stop once: later SIGTERMs are ignored so they cannot cut the clean-up short.

    A dead host sends two (the parent-death signal, and the stdin reader seeing the end of input);
    the second one used to land inside the writer's clean-up and leave the partial output behind.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stopped(128 + signum)


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM when the process that started this one dies.

    The signal comes when the parent *thread* ends; the host starts workers from threads that
    outlive them. Elsewhere (and if prctl is missing) the end of stdin does the job.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError) as err:
        print(f"cannot ask for a parent-death signal: {err!r}", file=sys.stderr)
        return
    if os.getppid() != parent:  # the host died before prctl took effect
        raise _Stopped(128 + signal.SIGTERM)


class _Requests:
    """Lines from stdin, read by a thread so that the end of input is seen even while a render runs.

    The main thread takes lines with `get`; at the end of input it gets None. If a render is running
    then, the host is gone: the worker sends itself SIGTERM, which stops the render.
    """

    def __init__(self) -> None:
        self.rendering = threading.Event()
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, name="stdin", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in sys.stdin:
                self._lines.put(line)
        finally:
            self._lines.put(None)
            if self.rendering.is_set():
                print("stdin closed during a render: the host is gone; stopping", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGTERM)

    def get(self) -> str | None:
        return self._lines.get()


def _warm_up(device: str) -> None:
    """Initialise the device in the background (see `lipsync_kit.devices.warm_up`); never fails the worker."""
    try:
        import torch

        from .devices import warm_up

        warm_up(torch.device(device))
    except Exception as err:  # a broken device shows up, with its real error, in the first render
        print(f"device warm-up failed: {err!r}", file=sys.stderr)


def serve(make_backend: Callable[[str], Backend], argv: list[str] | None = None) -> int:
    """Run the worker loop until ``shutdown`` or end of input. Returns the process exit status.

    SIGTERM ends the process as soon as the render in progress has unwound (its partial output removed):
    the interpreter's own shutdown, seconds with torch loaded, is skipped.
    """
    parser = argparse.ArgumentParser(description="lipsync backend worker (speaks JSON lines)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _serve(make_backend, args.device)
    except _Stopped as stop:
        sys.stderr.flush()
        os._exit(stop.code if isinstance(stop.code, int) else 1)


def _serve(make_backend: Callable[[str], Backend], device: str) -> int:
    _die_with_parent()
    out = _take_stdout()
    lock = threading.Lock()

    def send(message: protocol.Message) -> None:
        line = protocol.encode(message)
        with lock:
            out.write(line)
            out.flush()

    try:
        backend = make_backend(device)
    except _Stopped:
        raise
    except BaseException as err:
        send(_error_from_exception(err, None))
        return 1
    send(
        protocol.Ready(
            backend=backend.name,
            version=backend.version,
            device=backend.device,
            pid=os.getpid(),
            capabilities=backend.capabilities(),
        )
    )
    threading.Thread(target=_warm_up, args=(backend.device,), daemon=True).start()

    requests = _Requests()
    while (line := requests.get()) is not None:
        if not line.strip():
            continue
        try:
            request = protocol.decode(line)
        except protocol.ProtocolError as err:
            send(protocol.Error(code=ErrorCode.PROTOCOL, message=str(err)))
            continue
        if isinstance(request, protocol.Shutdown):
            break
        if isinstance(request, protocol.Ping):
            send(protocol.Pong(id=request.id))
        elif isinstance(request, protocol.Render):
            requests.rendering.set()
            try:
                output, stats = backend.render(request.params, Reporter(send, request.id))
            except Exception as err:
                send(_error_from_exception(err, request.id))
            else:
                send(protocol.Result(id=request.id, output=output, stats=stats))
            finally:
                requests.rendering.clear()
        else:
            send(protocol.Error(code=ErrorCode.PROTOCOL, message=f"unexpected request {request.type!r}"))
    return 0
