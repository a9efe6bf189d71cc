"""The host side of the worker protocol: start a backend worker, send requests, read its events.

The worker's stderr goes to a log file. A worker that exits before answering, or prints a line on
stdout that is not a protocol message, has crashed: the error carries its stderr tail and the log path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import IO, Any, Final

from lipsync_kit import protocol

from . import paths
from .envs import BackendEnv
from .errors import ErrorCode, LipsyncError

__all__ = ["EventHandler", "WorkerClient"]

EventHandler = Callable[[protocol.Message], None]

_STDERR_TAIL_LINES: Final = 15
_TERMINATE_GRACE_S: Final = 5.0
_CLIENTS = count(1)  # numbers the log files of the workers one host process starts


def _tail(path: Path, lines: int = _STDERR_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class WorkerClient:
    """One running backend worker. Use as a context manager, or call `start` and `close`."""

    def __init__(
        self,
        env: BackendEnv,
        *,
        device: str = "auto",
        log_dir: Path | None = None,
        env_vars: Mapping[str, str] | None = None,
    ) -> None:
        self.env = env
        self.device = device
        self.env_vars = dict(env_vars or {})  # on top of the backend's environment (CUDA_VISIBLE_DEVICES …)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        number = next(_CLIENTS)
        suffix = f"-{number}" if number > 1 else ""
        self.log_path = (log_dir or paths.logs_dir()) / f"{env.name}-{stamp}-{os.getpid()}{suffix}.log"
        self.ready: protocol.Ready | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ----------------------------------------------------------------------------- lifecycle

    def start(self, pass_fds: tuple[int, ...] = ()) -> protocol.Ready:
        """Start the worker and wait for its ``ready`` event."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the worker's lifetime
        argv = [str(self.env.python), "-m", f"{self.env.backend.package}.worker", "--device", self.device]
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env={**self.env.process_env(), **self.env_vars},
                pass_fds=pass_fds,
                start_new_session=True,  # Ctrl-C reaches the host only; the host stops the worker
            )
        except OSError as err:
            raise LipsyncError(
                ErrorCode.WORKER_CRASHED,
                f"cannot start the {self.env.name} worker ({argv[0]}): {err}",
                hint=f"rebuild the environment: lipsync env build {self.env.name} --force",
            ) from err
        message = self._read()
        if isinstance(message, protocol.Error):
            self.close()
            raise LipsyncError(message.code, message.message, message.hint)
        if not isinstance(message, protocol.Ready):
            self.kill()
            raise self._crash(f"sent {message.type!r} before 'ready'")
        self.ready = message
        return message

    def close(self) -> None:
        """Ask the worker to stop, then make sure it has."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(protocol.encode(protocol.Shutdown()).encode())
                proc.stdin.close()
                proc.wait(timeout=_TERMINATE_GRACE_S)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._cleanup()

    def terminate(self) -> None:
        """Send the worker SIGTERM and return at once (safe from another thread); it exits removing its
        partial output, and the thread waiting on it sees a crash."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the worker now: SIGTERM (it removes its partial output), then SIGKILL."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self.kill()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------------------ requests

    def render(self, params: dict[str, Any], on_event: EventHandler | None = None) -> protocol.Result:
        """Send one ``render`` request and return its ``result``; errors become `LipsyncError`."""
        request_id = uuid.uuid4().hex[:12]
        self._send(protocol.Render(id=request_id, params=params))
        while True:
            message = self._read()
            if isinstance(message, protocol.Result) and message.id == request_id:
                return message
            if isinstance(message, protocol.Error) and message.id in (request_id, None):
                raise LipsyncError(message.code, message.message, message.hint)
            if on_event is not None:
                on_event(message)

    def ping(self) -> float:
        """Round-trip time of a ``ping`` in seconds."""
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:8]
        self._send(protocol.Ping(id=request_id))
        while not (isinstance(message := self._read(), protocol.Pong) and message.id == request_id):
            pass
        return time.perf_counter() - started

    def _send(self, message: protocol.Message) -> None:
        proc = self._require_proc()
        try:
            assert proc.stdin is not None
            proc.stdin.write(protocol.encode(message).encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise self._crash("stopped accepting requests") from err

    def _read(self) -> protocol.Message:
        proc = self._require_proc()
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            raise self._crash(f"exited with status {proc.returncode} without answering")
        try:
            return protocol.decode(line)
        except protocol.ProtocolError as err:
            self.kill()
            raise self._crash(f"printed a line that is not a protocol message ({err})") from err

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("worker not started")
        return self._proc

    def _crash(self, what: str) -> LipsyncError:
        if self._log is not None:
            self._log.flush()
        tail = _tail(self.log_path)
        details = f"\n--- worker stderr (last lines) ---\n{tail}" if tail else ""
        return LipsyncError(
            ErrorCode.WORKER_CRASHED,
            f"the {self.env.name} worker crashed: it {what}{details}",
            hint=f"full log: {self.log_path}",
        )
