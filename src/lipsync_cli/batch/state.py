"""Batch results as JSON lines, and what ``--resume`` reads back from them.

Each finished job appends one record, flushed at once, so an interrupted batch leaves a results file
that a later ``--resume`` run continues from. A record's ``fingerprint`` hashes everything that decides
what a job renders: the model, the contents of its image and audio, its options, seed, checkpoints and
output; a job is skipped only when an earlier ``ok`` record has the same fingerprint and its output is
still there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any, Final, Literal

from ..catalogue import CHECKPOINTS
from ..errors import ErrorCode, LipsyncError
from ..output import JSON_SCHEMA_VERSION
from ..weights import sha256_file
from .manifest import Job, LineError

__all__ = ["FileDigests", "ResultsLog", "Status", "error_record", "fingerprint", "load_results", "ok_record"]

Status = Literal["ok", "error", "skipped", "low_sync"]
DONE: Final = ("ok", "skipped", "low_sync")  # low_sync: rendered, kept, scored below --min-lse-c
RECORD_KIND: Final = "job"


class FileDigests:
    """sha256 of input files, each read once per batch."""

    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._cache:
            self._cache[path] = sha256_file(path)
        return self._cache[path]


def _weights_identity(model: str, value: str | Path | None) -> str:
    if value is None or str(value) in CHECKPOINTS.get(model, ()):
        return f"named:{value or 'default'}"
    path = Path(value)
    try:
        stat = path.stat()
    except OSError:
        return f"custom:{path}"
    # Size and mtime, not sha256: hashing large checkpoints on every run costs too much.
    return f"custom:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def fingerprint(job: Job, digests: FileDigests) -> str:
    """A digest of everything that decides what ``job`` renders."""
    req = job.request
    body = {
        "model": req.model,
        "image": digests(req.face),
        "audio": digests(req.audio),
        "output": [str(job.output), req.output.format],
        "fps": req.fps,
        "seed": req.seed,
        "options": req.options,
        "weights": {
            option: _weights_identity(req.model, value) for option, value in sorted(req.weights.items())
        },
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


# -------------------------------------------------------------------------------------- records


def _base(job: Job | LineError, status: Status) -> dict[str, Any]:
    if isinstance(job, Job):
        ids = {"id": job.id, "line": job.line, "model": job.model, "output": str(job.output)}
        seed = job.request.seed
    else:
        output = str(job.output) if job.output else None
        ids = {"id": job.id, "line": job.line, "model": job.model, "output": output}
        seed = None
    return {"schema": JSON_SCHEMA_VERSION, "kind": RECORD_KIND, **ids, "status": status, "seed": seed}


def ok_record(job: Job, rendered: dict[str, Any], fp: str, seconds: float) -> dict[str, Any]:
    """The record of a job that rendered; ``rendered`` is `Renderer.render`'s record."""
    base = _base(job, "ok")
    return {
        **base,
        "seed": rendered.get("seed", base["seed"]),  # a sampling backend reports the seed it used
        "output": rendered["output"],
        "backend": rendered["backend"],
        "backend_version": rendered["backend_version"],
        "device": rendered["device"],
        "seconds": round(seconds, 4),
        "frames": rendered.get("frames"),
        "error": None,
        "fingerprint": fp,
        "worker": {"pid": rendered["worker_pid"], "model_loads": rendered.get("model_loads")},
        "timings": {k: round(v, 4) for k, v in rendered["seconds"].items()},
    }


def error_record(
    job: Job | LineError, err: LipsyncError, fp: str | None = None, seconds: float | None = None
) -> dict[str, Any]:
    """The record of a job that failed (or a line that never became a job)."""
    return {
        **_base(job, "error"),
        "seconds": None if seconds is None else round(seconds, 4),
        "frames": None,
        "error": {"code": err.code, "message": err.message, "hint": err.hint},
        "fingerprint": fp,
    }


def line_error_record(entry: LineError) -> dict[str, Any]:
    return error_record(entry, LipsyncError(entry.code, entry.message, entry.hint))


def skipped_record(job: Job, previous: dict[str, Any], fp: str) -> dict[str, Any]:
    """A job ``--resume`` skips: the earlier record's facts, status ``skipped``."""
    kept = {k: previous.get(k) for k in ("backend", "backend_version", "device", "frames")}
    return {**_base(job, "skipped"), **kept, "seconds": 0.0, "error": None, "fingerprint": fp}


# ------------------------------------------------------------------------------------ the file


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each job id in a results file; lines that are not records are passed over
    (an interrupted write can leave half a line)."""
    records: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return records
    except OSError as err:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"cannot read the results file {path}: {err}") from err
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
            continue
        if isinstance(record.get("id"), str):
            records[record["id"]] = record
    return records


def is_done(previous: dict[str, Any] | None, fp: str, output: Path) -> bool:
    """Whether an earlier record covers this job exactly and its output is still there."""
    return (
        previous is not None
        and previous.get("status") in DONE
        and previous.get("fingerprint") == fp
        and output.is_file()
    )


class ResultsLog:
    """Appends records to a results file, one flushed line each (``append`` keeps earlier records)."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a" if append else "w", encoding="utf-8")
        if append and self._file.tell() > 0 and not path.read_bytes().endswith(b"\n"):
            self._file.write("\n")  # end a half-written line of an interrupted run

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
