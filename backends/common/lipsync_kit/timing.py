"""Seconds per stage of a render, for the result's ``stats.seconds``."""

from __future__ import annotations

import time

__all__ = ["StageClock"]


class StageClock:
    """Laps of one wall clock: ``lap(stage)`` charges the time since the previous lap to ``stage``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._mark
        self._mark = now
