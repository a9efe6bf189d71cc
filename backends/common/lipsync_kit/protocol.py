"""The JSON-lines protocol spoken between the lipsync host and a backend worker.

Standard library only: the host imports this module too, so both sides share one schema.

Every message is one JSON object on one line with ``"v"`` (protocol version) and ``"type"``.
Requests (host -> worker) carry an ``"id"``; events about a request echo it.

host -> worker: ``render``, ``ping``, ``shutdown``.
worker -> host: ``ready``, ``progress``, ``log``, ``result``, ``error``, ``pong``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "PROTOCOL_VERSION",
    "Error",
    "ErrorCode",
    "Log",
    "Message",
    "Ping",
    "Pong",
    "Progress",
    "ProtocolError",
    "Ready",
    "Render",
    "Result",
    "Shutdown",
    "decode",
    "encode",
]

PROTOCOL_VERSION: Final = 1


class ErrorCode:
    """Stable error codes: the same strings in ``error.code``, in ``--json`` output and in the docs."""

    BAD_INPUT: Final = "bad_input"  # image/video missing, unreadable or undecodable
    NO_FACE: Final = "no_face"  # no face found where one is needed
    BAD_AUDIO: Final = "bad_audio"  # audio missing, corrupt, without an audio stream or empty
    SILENT_AUDIO: Final = "silent_audio"  # decodes, but every sample is zero
    AUDIO_TOO_SHORT: Final = "audio_too_short"  # shorter than one model window
    BAD_OPTION: Final = "bad_option"  # an option value that cannot work with this input
    OUTPUT_EXISTS: Final = "output_exists"  # output exists and --overwrite was not given
    OUTPUT_UNWRITABLE: Final = "output_unwritable"  # output folder missing or not writable
    WEIGHTS_MISSING: Final = "weights_missing"
    WEIGHTS_MISMATCH: Final = "weights_mismatch"  # sha256 or size differs from the manifest
    BAD_CHECKPOINT: Final = "bad_checkpoint"  # a file that is not a loadable checkpoint of this model
    DEVICE_UNAVAILABLE: Final = "device_unavailable"
    OUT_OF_MEMORY: Final = "out_of_memory"
    ENCODE_FAILED: Final = "encode_failed"  # ffmpeg failed while writing the output
    ENV_BUILD_FAILED: Final = "env_build_failed"
    UV_NOT_FOUND: Final = "uv_not_found"
    DOWNLOAD_FAILED: Final = "download_failed"
    UNKNOWN_MODEL: Final = "unknown_model"
    WORKER_CRASHED: Final = "worker_crashed"
    RAY_UNAVAILABLE: Final = "ray_unavailable"  # host only: --ray without the ray extra, or no cluster
    PROTOCOL: Final = "protocol"  # a peer spoke something that is not this protocol
    INTERRUPTED: Final = "interrupted"
    BROKEN_PIPE: Final = "broken_pipe"  # host only: the reader of ``-o -`` closed the pipe (``| head``)
    INTERNAL: Final = "internal"


class ProtocolError(ValueError):
    """A line that is not a valid protocol message."""


@dataclass(frozen=True)
class Message:
    """Base of every protocol message."""

    type: str = field(init=False, default="")

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("type", None)
        return {"v": PROTOCOL_VERSION, "type": self.type, **body}


# ----------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Render(Message):
    """Render one clip. ``params`` holds absolute paths and options only, never pixels."""

    id: str
    params: dict[str, Any]
    type: Literal["render"] = field(init=False, default="render")


@dataclass(frozen=True)
class Ping(Message):
    id: str
    type: Literal["ping"] = field(init=False, default="ping")


@dataclass(frozen=True)
class Shutdown(Message):
    type: Literal["shutdown"] = field(init=False, default="shutdown")


# ------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ready(Message):
    """Sent once when the worker can take requests."""

    backend: str
    version: str
    device: str
    pid: int
    capabilities: dict[str, Any] = field(default_factory=dict)
    type: Literal["ready"] = field(init=False, default="ready")


@dataclass(frozen=True)
class Progress(Message):
    id: str
    stage: str
    done: int
    total: int
    type: Literal["progress"] = field(init=False, default="progress")


@dataclass(frozen=True)
class Log(Message):
    level: str
    message: str
    id: str | None = None
    type: Literal["log"] = field(init=False, default="log")


@dataclass(frozen=True)
class Result(Message):
    id: str
    output: str | None
    stats: dict[str, Any]
    type: Literal["result"] = field(init=False, default="result")


@dataclass(frozen=True)
class Error(Message):
    code: str
    message: str
    id: str | None = None
    hint: str | None = None
    type: Literal["error"] = field(init=False, default="error")


@dataclass(frozen=True)
class Pong(Message):
    id: str
    type: Literal["pong"] = field(init=False, default="pong")


_MESSAGE_TYPES: Final[dict[str, type[Message]]] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[misc]
    for cls in (Render, Ping, Shutdown, Ready, Progress, Log, Result, Error, Pong)
}


def encode(message: Message) -> str:
    """One protocol line, newline included."""
    return json.dumps(message.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n"


def decode(line: str | bytes) -> Message:
    """Parse one protocol line; raise `ProtocolError` for anything that is not a known message."""
    try:
        body = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtocolError(f"not JSON: {line[:200]!r}") from err
    if not isinstance(body, dict):
        raise ProtocolError(f"not a JSON object: {line[:200]!r}")
    version = body.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}, expected {PROTOCOL_VERSION}")
    kind = body.pop("type", None)
    cls = _MESSAGE_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    try:
        return cls(**body)
    except TypeError as err:
        raise ProtocolError(f"bad {kind} message: {err}") from err
