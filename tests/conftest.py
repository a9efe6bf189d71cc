"""Shared by every pytest run under tests/, host and backend envs alike (stdlib and pytest only).

``--skip-log FILE`` appends one JSON line per skipped test: its id, whether it is marked ``cuda`` and the
reason. ``tests/run`` gives every run the same file and ends with ``tests/check_skips.py``, which fails on any
skip but those of the CUDA-only tests.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

import pytest


class SkipLog:
    """Writes the skipped tests of one run to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, test: str, cuda: bool, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):  # an xfail is reported as skipped, too
            return
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"test": test, "cuda": cuda, "reason": reason}) + "\n")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None]:
        outcome = yield
        self.write(item.nodeid, item.get_closest_marker("cuda") is not None, outcome.get_result())

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module skipped as a whole (``pytest.importorskip`` at its top) never reaches its tests."""
        self.write(report.nodeid, False, report)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--skip-log", metavar="FILE", help="append one JSON line per skipped test to FILE")


def pytest_configure(config: pytest.Config) -> None:
    if path := config.getoption("skip_log"):
        config.pluginmanager.register(SkipLog(Path(path)), "skip-log")
