"""Backend environments: one uv virtualenv per backend, built from its committed ``uv.lock``.

An env counts as ready only when its stamp (sha256 of the lock + the Python version) matches; the
stamp is written atomically and last, so an interrupted build is never taken for a finished one.
Builds run under a file lock per backend, so concurrent ``lipsync`` processes never race.

``LIPSYNC_<BACKEND>_PYTHON`` (e.g. ``LIPSYNC_WAV2LIP_PYTHON=/opt/conda/bin/python``) points a
backend at an existing interpreter that already has its dependencies (prebuilt GPU images); the
backend sources are then put on ``PYTHONPATH`` instead of being installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from filelock import FileLock

from . import paths
from .catalogue import BACKENDS, Backend
from .errors import ErrorCode, LipsyncError
from .output import Reporter

__all__ = ["BackendEnv", "find_uv", "uv_environment"]

STAMP_NAME: Final = ".lipsync-stamp.json"
_UV_TAIL_LINES: Final = 25


def find_uv() -> Path:
    """``$LIPSYNC_UV``, else the binary of the ``uv`` package, else ``uv`` on PATH."""
    if value := os.environ.get("LIPSYNC_UV"):
        return Path(value)
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    if found := shutil.which("uv"):
        return Path(found)
    raise LipsyncError(
        ErrorCode.UV_NOT_FOUND,
        "uv was not found; lipsync needs it to build the model environments",
        hint="pip install uv   (or set LIPSYNC_UV=/path/to/uv)",
    )


def uv_environment(env_dir: Path) -> dict[str, str]:
    """A clean environment for uv: target env set per call, no Python downloads, no leaked venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["UV_PROJECT_ENVIRONMENT"] = str(env_dir)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use a Python this machine has; never fetch one
    env["UV_NO_PROGRESS"] = "1"
    return env


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class BackendEnv:
    """The environment of one backend."""

    backend: Backend

    @classmethod
    def named(cls, name: str) -> BackendEnv:
        return cls(BACKENDS[name])

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def source_dir(self) -> Path:
        return paths.backends_dir() / self.name

    @property
    def env_dir(self) -> Path:
        return paths.envs_dir() / self.name

    @property
    def lock_path(self) -> Path:
        return self.source_dir / "uv.lock"

    @property
    def external_python(self) -> Path | None:
        """The interpreter named by ``LIPSYNC_<BACKEND>_PYTHON``, if any."""
        value = os.environ.get(f"LIPSYNC_{self.name.upper()}_PYTHON")
        return Path(value) if value else None

    @property
    def python(self) -> Path:
        return self.external_python or self.env_dir / "bin" / "python"

    def expected_stamp(self) -> dict[str, str]:
        return {
            "lock_sha256": _sha256(self.lock_path),
            "python": ".".join(map(str, sys.version_info[:3])),
        }

    def stamp(self) -> dict[str, str] | None:
        try:
            return json.loads((self.env_dir / STAMP_NAME).read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> str:
        """``external``, ``ready``, ``stale`` (lock changed) or ``missing``."""
        if self.external_python:
            return "external"
        stamp = self.stamp()
        if stamp is None:
            return "missing"
        expected = self.expected_stamp()
        return "ready" if all(stamp.get(k) == v for k, v in expected.items()) else "stale"

    def process_env(self) -> dict[str, str]:
        """Environment variables for running this backend's worker."""
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        if self.external_python:
            extra = [str(self.source_dir), str(paths.backends_dir() / "common")]
            env["PYTHONPATH"] = os.pathsep.join(
                extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
            )
        else:
            env.pop("PYTHONPATH", None)
        return env

    def ensure(self, reporter: Reporter, *, force: bool = False) -> Path:
        """Build the env if it is missing or stale; return its Python."""
        if self.external_python:
            if not self.external_python.exists():
                raise LipsyncError(
                    ErrorCode.ENV_BUILD_FAILED,
                    f"LIPSYNC_{self.name.upper()}_PYTHON is {self.external_python}, which does not exist",
                )
            return self.external_python
        if not force and self.status() == "ready":
            return self.python
        self.env_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.env_dir) + ".lock"):
            if not force and self.status() == "ready":  # another process built it while we waited
                return self.python
            self._build(reporter)
        return self.python

    def remove(self) -> bool:
        with FileLock(str(self.env_dir) + ".lock"):
            if not self.env_dir.exists():
                return False
            shutil.rmtree(self.env_dir)
            return True

    def _build(self, reporter: Reporter) -> None:
        uv = find_uv()
        (self.env_dir / STAMP_NAME).unlink(missing_ok=True)
        argv = [
            str(uv),
            "sync",
            "--project",
            str(self.source_dir),
            "--frozen",
            "--no-dev",
            "--python",
            sys.executable,
        ]
        started = time.monotonic()
        tail: deque[str] = deque(maxlen=_UV_TAIL_LINES)
        with reporter.task(f"building the {self.name} environment (first run only)") as task:
            try:
                proc = subprocess.Popen(
                    argv,
                    env=uv_environment(self.env_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                )
            except OSError as err:
                raise LipsyncError(ErrorCode.UV_NOT_FOUND, f"cannot run uv at {uv}: {err}") from err
            assert proc.stdout is not None
            for count, line in enumerate(proc.stdout, 1):
                tail.append(line.rstrip())
                task.update(count)
            status = proc.wait()
        if status != 0:
            relevant = [line for line in tail if line.strip()]
            raise LipsyncError(
                ErrorCode.ENV_BUILD_FAILED,
                f"building the {self.name} environment failed (uv exit {status}):\n  "
                + "\n  ".join(relevant),
                hint=f"check the network or package index, then: lipsync env build {self.name} --force",
            )
        stamp = {
            **self.expected_stamp(),
            "uv": subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.strip(),
            "built_seconds": f"{time.monotonic() - started:.1f}",
        }
        temp = self.env_dir / (STAMP_NAME + ".tmp")
        temp.write_text(json.dumps(stamp, indent=1))
        os.replace(temp, self.env_dir / STAMP_NAME)
