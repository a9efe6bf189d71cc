"""Threads joined by bounded queues, so CPU stages (decode, detect, paste, encode) overlap the model.

`prefetch` runs a producer ahead of its consumer; `BackgroundSink` runs a consumer behind its
producer. Both hold at most ``depth`` items, so memory stays bounded at any length, and both hand an
exception raised in their thread to the other side, where it is raised again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Final, Generic, TypeVar

__all__ = ["BackgroundSink", "prefetch"]

T = TypeVar("T")
_END: Final = object()
_POLL_S: Final = 0.1


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(q: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable[T], depth: int, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a thread, at most ``depth`` items ahead of the caller.

    Closing the returned generator (or leaving a ``for`` loop over it early) stops the thread.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(q, item, stop):
                    return
            _put(q, _END, stop)
        except BaseException as err:  # handed to the consumer, which raises it
            _put(q, _Failure(err), stop)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class BackgroundSink(Generic[T]):
    """Call ``consume(item)`` for each `put` item in a thread, in order, at most ``depth`` behind.

    Use as a context manager: leaving the block normally waits for the queue to drain and raises any
    error of the consumer; leaving it with an exception stops the consumer without draining.
    """

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "sink") -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._consume(item)  # type: ignore[arg-type]
            except BaseException as err:  # raised again in the producer by put() or close()
                self._error = err
                self._stop.set()
                return

    def put(self, item: T) -> None:
        """Queue ``item``; raises the consumer's error if it has failed."""
        if self._error is not None or not _put(self._queue, item, self._stop):
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
        raise RuntimeError("the sink is closed")

    def close(self) -> None:
        """Wait until every queued item is consumed; raises the consumer's error if any."""
        _put(self._queue, _END, self._stop)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the consumer without consuming what is still queued."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BackgroundSink[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
