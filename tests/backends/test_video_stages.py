"""lipsync_kit.stages: threads joined by bounded queues keep order, bound memory and pass errors on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from lipsync_kit.stages import BackgroundSink, prefetch


def test_prefetch_keeps_order_and_stays_bounded() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=4)
    assert next(stream) == 0
    time.sleep(0.3)  # the producer runs ahead only as far as the queue allows
    assert len(produced) <= 1 + 4 + 1
    assert [0, *stream] == list(range(50))


def test_prefetch_raises_the_producers_error_in_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("decoder died")

    stream = prefetch(items(), depth=2)
    assert next(stream) == 1
    with pytest.raises(OSError, match="decoder died"):
        next(stream)


def test_closing_prefetch_early_stops_its_thread() -> None:
    before = threading.active_count()
    stream = prefetch(iter(range(10_000)), depth=2)
    next(stream)
    stream.close()
    assert threading.active_count() == before


def test_sink_consumes_in_order_and_drains_on_close() -> None:
    seen: list[int] = []
    with BackgroundSink(seen.append, depth=2) as sink:
        for i in range(100):
            sink.put(i)
    assert seen == list(range(100))


def test_sink_error_reaches_the_producer() -> None:
    def consume(item: int) -> None:
        if item == 3:
            raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"), BackgroundSink(consume, depth=1) as sink:
        for i in range(1000):
            sink.put(i)
