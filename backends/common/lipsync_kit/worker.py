"""The request loop every backend worker runs: read requests on stdin, answer JSON lines on stdout.

Stdout belongs to the protocol alone. At start the real stdout is kept for protocol lines and
file descriptor 1 is pointed at stderr, so whatever a library (or a child process such as
ffmpeg) prints can never corrupt the protocol stream.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, Any, Protocol

from . import protocol
from .errors import BackendError
from .protocol import ErrorCode

__all__ = ["Backend", "Reporter", "serve"]


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


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwinding (instead of dying) lets open output writers remove their partial files.
    raise SystemExit(128 + signum)


def _warm_up(device: str) -> None:
    """Initialise the device in the background (see `lipsync_kit.devices.warm_up`); never fails the worker."""
    try:
        import torch

        from .devices import warm_up

        warm_up(torch.device(device))
    except Exception as err:  # a broken device shows up, with its real error, in the first render
        print(f"device warm-up failed: {err!r}", file=sys.stderr)


def serve(make_backend: Callable[[str], Backend], argv: list[str] | None = None) -> int:
    """Run the worker loop until ``shutdown`` or end of input. Returns the process exit status."""
    parser = argparse.ArgumentParser(description="lipsync backend worker (speaks JSON lines)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args(argv)

    out = _take_stdout()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    lock = threading.Lock()

    def send(message: protocol.Message) -> None:
        line = protocol.encode(message)
        with lock:
            out.write(line)
            out.flush()

    try:
        backend = make_backend(args.device)
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

    for line in sys.stdin:
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
            try:
                output, stats = backend.render(request.params, Reporter(send, request.id))
            except Exception as err:
                send(_error_from_exception(err, request.id))
            else:
                send(protocol.Result(id=request.id, output=output, stats=stats))
        else:
            send(protocol.Error(code=ErrorCode.PROTOCOL, message=f"unexpected request {request.type!r}"))
    return 0
