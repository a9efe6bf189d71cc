"""The one table from error codes to HTTP statuses, and the API's own few codes.

Job failures carry the CLI's codes (`lipsync_kit.protocol.ErrorCode`); the statuses below apply when a
request itself fails with one of them (a submission refused before it was queued, mostly).
"""

from __future__ import annotations

from typing import Final

from ..errors import ErrorCode, LipsyncError

__all__ = ["ApiCode", "ApiError", "http_status"]


class ApiCode:
    """Codes only the API uses: HTTP matters the CLI never meets."""

    UNAUTHORIZED: Final = "unauthorized"  # 401: no token, or a wrong one
    FORBIDDEN_PATH: Final = "forbidden_path"  # 403: a path outside --allow-paths, or any path without it
    NOT_FOUND: Final = "not_found"  # 404: no such job, or a job without an output
    TOO_LARGE: Final = "too_large"  # 413: the upload is over --max-upload-mb
    DRAINING: Final = "draining"  # 503: the server is shutting down and takes no new jobs


_STATUS: Final[dict[str, int]] = {
    ErrorCode.BAD_OPTION: 422,
    ErrorCode.UNKNOWN_MODEL: 422,
    ErrorCode.BAD_INPUT: 422,
    ErrorCode.NO_FACE: 422,
    ErrorCode.BAD_AUDIO: 422,
    ErrorCode.SILENT_AUDIO: 422,
    ErrorCode.AUDIO_TOO_SHORT: 422,
    ErrorCode.BAD_CHECKPOINT: 422,
    ErrorCode.OUTPUT_EXISTS: 409,
    ErrorCode.INTERRUPTED: 409,
    ErrorCode.WEIGHTS_MISSING: 503,
    ErrorCode.WEIGHTS_MISMATCH: 503,
    ErrorCode.UV_NOT_FOUND: 503,
    ErrorCode.ENV_BUILD_FAILED: 503,
    ErrorCode.DOWNLOAD_FAILED: 503,
    ErrorCode.DEVICE_UNAVAILABLE: 503,
    ErrorCode.OUT_OF_MEMORY: 503,
    ErrorCode.OUTPUT_UNWRITABLE: 500,
    ErrorCode.ENCODE_FAILED: 500,
    ErrorCode.WORKER_CRASHED: 500,
    ErrorCode.PROTOCOL: 500,
    ErrorCode.INTERNAL: 500,
    ApiCode.UNAUTHORIZED: 401,
    ApiCode.FORBIDDEN_PATH: 403,
    ApiCode.NOT_FOUND: 404,
    ApiCode.TOO_LARGE: 413,
    ApiCode.DRAINING: 503,
}


def http_status(code: str) -> int:
    return _STATUS.get(code, 500)


class ApiError(LipsyncError):
    """A request that fails; the response is ``{"ok": false, "code", "message", "hint"}``."""

    @property
    def status(self) -> int:
        return http_status(self.code)
