"""Helpers for the batch tests: manifests, short speech, running ``lipsync batch`` and reading its results."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from media import copy_speech

# Stand-in renders are slow on a small CPU: a short clip at 10 fps keeps each job to a few frames.
FAST = {"fps": 10}
FIXED_BOX = {"box": [40, 220, 40, 220]}  # skips face detection where a test is not about it


def short_speech(folder: Path, name: str = "hi.wav") -> Path:
    """About 0.7 s of speech ("Hi.") copied into ``folder`` as ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    return copy_speech("hi", folder / name)


def silent_wav(path: Path, seconds: float = 0.6) -> Path:
    """A WAV file of digital silence (decodes fine; the backends refuse it as ``silent_audio``)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * int(16000 * seconds))
    return path


def write_manifest(path: Path, lines: Iterable[dict[str, Any] | str]) -> Path:
    """One line per entry: dicts as JSON, strings verbatim (for broken lines)."""
    path.write_text("".join((json.dumps(e) if isinstance(e, dict) else e) + "\n" for e in lines))
    return path


def batch_argv(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "lipsync_cli", "batch", *map(str, args)]


def json_lines(text: str | bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (text.decode() if isinstance(text, bytes) else text).splitlines()]


def jobs_and_summary(stdout: bytes) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``--json`` output: records by id (or ``line:N``) and the closing summary."""
    records = json_lines(stdout)
    assert records and records[-1]["kind"] == "summary", stdout.decode()
    jobs = {r["id"] if r["id"] is not None else f"line:{r['line']}": r for r in records[:-1]}
    assert all(r["kind"] == "job" for r in jobs.values())
    return jobs, records[-1]


def read_results(path: Path) -> list[dict[str, Any]]:
    """The complete records of a results file that may still be being written."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # the line being written
            records.append(json.loads(line))
    return records


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen[Any]) -> None:
    """Poll until ``condition`` holds; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"lipsync batch ended early ({proc.returncode})"
        assert time.monotonic() < deadline, "timed out waiting for the batch"
        time.sleep(0.1)


def leftovers(folder: Path) -> list[str]:
    """Hidden temp files a render could leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
