"""Helpers for the ``lipsync serve`` tests: a real server process on a free loopback port, and its API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

FAST = {"fps": 10, "box": [40, 220, 40, 220]}  # few frames, no face detection: a render in seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``lipsync serve --device cpu`` as a subprocess with its own LIPSYNC_HOME; stderr goes to a file."""

    def __init__(self, home: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None):
        self.home = home
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "LIPSYNC_HOME": str(home),
            "LIPSYNC_OFFLINE": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "lipsync_cli", "serve", "--port", str(self.port), "--device", "cpu"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*argv, *self.args], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the server exited ({self.proc.returncode}): {self.log_text()}"
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 300) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, headers=headers)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(signal.SIGKILL, timeout=60)


def submit(
    http: httpx.Client,
    face: Path,
    audio: Path,
    options: dict[str, Any],
    *,
    model: str = "wav2lip",
    **fields: str,
) -> httpx.Response:
    """A multipart submission of ``face`` and ``audio``."""
    with open(face, "rb") as image, open(audio, "rb") as speech:
        return http.post(
            "/v1/jobs",
            data={"model": model, "options": json.dumps(options), **fields},
            files={"image": (face.name, image), "audio": (audio.name, speech)},
        )


def events(http: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every server-sent event of a job until its ``end``: (event name, job)."""
    found: list[tuple[str, dict[str, Any]]] = []
    name = ""
    with http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=600) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                found.append((name, json.loads(line[5:])))
    return found


def wait_job(
    http: httpx.Client, job_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 600
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if condition(job):
            return job
        assert time.monotonic() < deadline, f"timed out; the job is {job}"
        time.sleep(0.1)


def ended(job: dict[str, Any]) -> bool:
    return job["status"] in ("ok", "error", "cancelled", "interrupted")
