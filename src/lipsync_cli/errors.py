"""Typed host errors with stable codes, and the one place that maps them to exit statuses."""

from __future__ import annotations

from typing import Final

from lipsync_kit.protocol import ErrorCode

__all__ = ["SERVE_UNAVAILABLE", "ErrorCode", "LipsyncError", "Outcome", "exit_status"]

SERVE_UNAVAILABLE: Final = "serve_unavailable"  # host only: lipsync serve without the serve extra


class Outcome:
    """Ends of a command that are not one error, with their own exit statuses."""

    JOBS_FAILED: Final = "jobs_failed"  # lipsync batch: some jobs failed, the others rendered
    CHECKS_FAILED: Final = "checks_failed"  # lipsync doctor: a check failed


# sysexits.h where one fits; 1 for anything not listed.
_EXIT_STATUS: Final[dict[str, int]] = {
    ErrorCode.BAD_OPTION: 2,
    ErrorCode.UNKNOWN_MODEL: 2,
    ErrorCode.BAD_INPUT: 65,
    ErrorCode.NO_FACE: 65,
    ErrorCode.BAD_AUDIO: 65,
    ErrorCode.SILENT_AUDIO: 65,
    ErrorCode.AUDIO_TOO_SHORT: 65,
    ErrorCode.WEIGHTS_MISSING: 66,
    ErrorCode.WEIGHTS_MISMATCH: 66,
    ErrorCode.BAD_CHECKPOINT: 66,
    ErrorCode.UV_NOT_FOUND: 69,
    ErrorCode.ENV_BUILD_FAILED: 69,
    ErrorCode.DOWNLOAD_FAILED: 69,
    ErrorCode.DEVICE_UNAVAILABLE: 69,
    ErrorCode.RAY_UNAVAILABLE: 69,
    SERVE_UNAVAILABLE: 69,
    ErrorCode.INTERNAL: 70,
    ErrorCode.WORKER_CRASHED: 70,
    ErrorCode.PROTOCOL: 70,
    ErrorCode.OUT_OF_MEMORY: 71,
    ErrorCode.ENCODE_FAILED: 74,
    ErrorCode.OUTPUT_EXISTS: 73,
    ErrorCode.OUTPUT_UNWRITABLE: 73,
    ErrorCode.INTERRUPTED: 130,
    ErrorCode.BROKEN_PIPE: 141,  # 128 + SIGPIPE, what a shell shows for a tool stopped by a closed pipe
    Outcome.JOBS_FAILED: 1,
    Outcome.CHECKS_FAILED: 1,
}


class LipsyncError(Exception):
    """A failure the user can act on: a stable ``code``, a message and, where one helps, a hint."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def exit_status(code: str) -> int:
    """The process exit status for an error code."""
    return _EXIT_STATUS.get(code, 1)
