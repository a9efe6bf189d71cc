"""The job store: one SQLite file under ``LIPSYNC_HOME`` that outlives the server process.

A job row holds its request (what the worker needs), its status and, once it ended, the render record or
the error. Live progress stays in memory (`hub`); a job that was queued or running when the server stopped
is marked ``interrupted`` at the next start, never reported as done.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final

__all__ = ["ACTIVE", "FINISHED", "JobStore"]

ACTIVE: Final = ("queued", "running")
FINISHED: Final = ("ok", "error", "cancelled", "interrupted")

_SCHEMA: Final = """
create table if not exists jobs (
    id text primary key,
    status text not null,
    model text not null,
    created real not null,
    started real,
    finished real,
    request text not null,
    result text,
    error text
);
create index if not exists jobs_created on jobs (created);
"""
_JSON_COLUMNS: Final = ("request", "result", "error")


class JobStore:
    """Thread-safe access to the jobs table (one connection, one lock; writes are tiny)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("pragma journal_mode = wal")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> list[str]:
        """Mark the jobs a previous server left queued or running as ``interrupted``; return their ids."""
        error = json.dumps({"code": "interrupted", "message": "the server stopped before the job ended"})
        with self._lock:
            rows = self._db.execute("select id from jobs where status in (?, ?)", ACTIVE).fetchall()
            self._db.execute(
                "update jobs set status = 'interrupted', finished = ?, error = ? where status in (?, ?)",
                (time.time(), error, *ACTIVE),
            )
        return [row["id"] for row in rows]

    def add(self, job_id: str, model: str, request: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "insert into jobs (id, status, model, created, request) values (?, 'queued', ?, ?, ?)",
                (job_id, model, time.time(), json.dumps(request)),
            )

    def started(self, job_id: str) -> bool:
        """Queued -> running; False when the job is no longer queued (cancelled meanwhile)."""
        with self._lock:
            cursor = self._db.execute(
                "update jobs set status = 'running', started = ? where id = ? and status = 'queued'",
                (time.time(), job_id),
            )
        return cursor.rowcount == 1

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """An active job ends with ``status``; False when it had already ended."""
        with self._lock:
            cursor = self._db.execute(
                "update jobs set status = ?, finished = ?, result = ?, error = ? "
                "where id = ? and status in (?, ?)",
                (
                    status,
                    time.time(),
                    json.dumps(result) if result is not None else None,
                    json.dumps(error) if error is not None else None,
                    job_id,
                    *ACTIVE,
                ),
            )
        return cursor.rowcount == 1

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("select * from jobs where id = ?", (job_id,)).fetchone()
        return _decode(row) if row is not None else None

    def recent(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        query, args = "select * from jobs", []
        if status is not None:
            query, args = query + " where status = ?", [status]
        with self._lock:
            rows = self._db.execute(f"{query} order by created desc limit ?", (*args, limit)).fetchall()
        return [_decode(row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("select status, count(*) as n from jobs group by status").fetchall()
        return {row["status"]: row["n"] for row in rows}

    def prunable(self, older_than: float, keep: int) -> list[str]:
        """Finished jobs created before ``older_than`` (epoch s), and any beyond the ``keep`` newest."""
        marks = ",".join("?" * len(FINISHED))
        with self._lock:
            old = self._db.execute(
                f"select id from jobs where status in ({marks}) and created < ?", (*FINISHED, older_than)
            ).fetchall()
            extra = self._db.execute(
                f"select id from jobs where status in ({marks}) order by created desc limit -1 offset ?",
                (*FINISHED, keep),
            ).fetchall()
        return sorted({row["id"] for row in (*old, *extra)})

    def delete(self, job_ids: list[str]) -> None:
        with self._lock:
            self._db.executemany("delete from jobs where id = ?", [(job_id,) for job_id in job_ids])


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    for column in _JSON_COLUMNS:
        if job[column] is not None:
            job[column] = json.loads(job[column])
    return job
