"""Everything the host shows people: results on stdout, messages and progress on stderr.

Every command's result goes through `emit` (one JSON object with ``--json``, else plain lines) or
`print_table`; the rest of the host talks to the `Reporter` interface and never imports Rich. `RichReporter`
draws transient progress bars when stderr is a terminal; `PlainReporter` writes plain lines (no
bars) for pipes, CI logs and ``--json`` runs. ``NO_COLOR`` is honoured by Rich itself.
"""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

__all__ = [
    "JSON_SCHEMA_VERSION",
    "PlainReporter",
    "Reporter",
    "RichReporter",
    "Task",
    "emit",
    "make_reporter",
    "print_error",
    "print_json",
    "print_table",
]

JSON_SCHEMA_VERSION: Final = 1


class Task(ABC):
    """One unit of work with optional progress."""

    @abstractmethod
    def update(self, done: float, total: float | None = None) -> None: ...


class Reporter(ABC):
    """Where host components send what people should see."""

    @abstractmethod
    def info(self, message: str) -> None: ...

    @abstractmethod
    def warn(self, message: str) -> None: ...

    @abstractmethod
    @contextmanager
    def task(self, description: str, total: float | None = None, *, bytes_: bool = False) -> Iterator[Task]:
        """A progress task; ``bytes_`` shows sizes and speed instead of counts."""


class _NullTask(Task):
    def update(self, done: float, total: float | None = None) -> None:
        pass


class PlainReporter(Reporter):
    """Plain lines on stderr; no progress bars. ``quiet`` keeps only warnings."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def task(self, description: str, total: float | None = None, *, bytes_: bool = False) -> Iterator[Task]:
        self.info(f"{description} …")
        yield _NullTask()


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def update(self, done: float, total: float | None = None) -> None:
        if total is not None:
            self._progress.update(self._id, total=total)
        self._progress.update(self._id, completed=done)


class RichReporter(Reporter):
    """Rich on stderr: transient bars while work runs, a line for each finished task."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    @contextmanager
    def task(self, description: str, total: float | None = None, *, bytes_: bool = False) -> Iterator[Task]:
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if bytes_:
            columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            columns += [MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=True) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total))
        self.console.print(f"[green]✓[/] {description}", highlight=False)


def make_reporter(*, json_mode: bool = False, quiet: bool = False) -> Reporter:
    """Rich bars on a terminal; plain lines otherwise; only warnings in ``--json`` / ``--quiet`` mode."""
    if json_mode or quiet:
        return PlainReporter(quiet=True)
    if sys.stderr.isatty() and os.environ.get("TERM") != "dumb":
        return RichReporter()
    return PlainReporter()


def print_json(kind: str, payload: dict[str, Any]) -> None:
    """One versioned JSON object on stdout: ``{"schema": 1, "kind": ..., **payload}``."""
    body = {"schema": JSON_SCHEMA_VERSION, "kind": kind, **payload}
    sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(kind: str, payload: dict[str, Any], *, json_mode: bool, lines: Iterable[str] = ()) -> None:
    """A command's result on stdout: ``payload`` as one JSON object in ``--json`` mode, else ``lines``."""
    if json_mode:
        print_json(kind, payload)
        return
    for line in lines:
        print(line)
    sys.stdout.flush()


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, stderr: bool = False) -> None:
    """An aligned table for people (stdout, or stderr for summaries beside a command's results)."""
    table = Table(*headers, box=None)
    for row in rows:
        table.add_row(*row)
    Console(stderr=stderr, highlight=False).print(table)


def print_error(code: str, message: str, hint: str | None, *, json_mode: bool) -> None:
    """``error [code]: message`` and a hint on stderr; with ``--json`` also the error object on stdout."""
    if json_mode:
        print_json("error", {"ok": False, "code": code, "message": message, "hint": hint})
    print(f"error [{code}]: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
