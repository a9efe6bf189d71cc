"""Typed errors raised inside a backend; the worker loop turns them into protocol ``error`` events."""

from __future__ import annotations

from .protocol import ErrorCode

__all__ = ["BackendError", "ErrorCode"]


class BackendError(Exception):
    """A failure with a stable ``code`` (see `ErrorCode`), a message for people and an optional hint."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
