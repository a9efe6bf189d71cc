"""Run the app under uvicorn; SIGTERM (or Ctrl-C) drains: no new jobs, running ones get time to finish."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from .app import create_app
from .config import ServeConfig
from .service import Service

__all__ = ["serve"]


class _DrainingServer(uvicorn.Server):
    """uvicorn's server that stops taking jobs as soon as the signal arrives, before connections close."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_drain()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and Ctrl-C start the drain; a drained server then exits 0 (uvicorn's own would re-raise
        the signal and die of it)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve until SIGTERM / Ctrl-C. The access log stays off: no request line, header or token is logged."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    service = Service(config)
    app = create_app(config, service)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.drain_timeout_s) or None,
        lifespan="on",
    )
    _DrainingServer(uv_config, service).run()
