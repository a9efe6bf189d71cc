"""Multipart submissions streamed straight to the job's folder, with a limit on the whole body.

The two files (``image``, ``audio``) go to disk as they arrive, never into memory; small text fields
(``model``, ``options`` …) are kept. A body over the limit stops the upload at once (HTTP 413) and the
caller removes the folder. What a file is gets decided later by decoding it, never by its name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import ErrorCode, LipsyncError

__all__ = ["FILE_FIELDS", "Form", "TooLarge", "read_form"]

FILE_FIELDS: Final = ("image", "audio")
_MAX_FIELD_BYTES: Final = 64 * 1024
_MAX_PARTS: Final = 16


class TooLarge(Exception):
    """The body is over the upload limit."""


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # field name -> file on disk
    sizes: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # field name -> the client's file name

    def public(self, err: LipsyncError) -> LipsyncError:
        """``err`` with the server's paths of the uploads replaced by the names the client sent."""
        message = err.message
        for name, path in self.files.items():
            message = message.replace(str(path), f"the uploaded {name} {self.names.get(name, '')!r}")
        return LipsyncError(err.code, message, err.hint)


class _Collector:
    """python-multipart callbacks that route each part to a file or a text field."""

    def __init__(self, folder: Path, form: Form) -> None:
        self.folder = folder
        self.form = form
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._file: IO[bytes] | None = None
        self._text = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise _bad(f"more than {_MAX_PARTS} parts")
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _kind, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if self._name in FILE_FIELDS:
            if self._name in self.form.files:
                raise _bad(f"two {self._name!r} files")
            path = self.folder / self._name  # no suffix: ffmpeg must tell the type from the bytes
            self._file = open(path, "xb")  # noqa: SIM115 - closed in on_part_end or by `read_form`
            self.form.files[self._name] = path
            self.form.names[self._name] = filename.decode("utf-8", "replace") if filename else ""
            self.form.sizes[self._name] = 0
        elif filename is not None:
            raise _bad(f"unexpected file field {self._name!r} (expected {', '.join(FILE_FIELDS)})")
        self._text = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(data[start:end])
            self.form.sizes[self._name] += end - start
        else:
            self._text += data[start:end]
            if len(self._text) > _MAX_FIELD_BYTES:
                raise _bad(f"the field {self._name!r} is over {_MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        else:
            self.form.fields[self._name] = self._text.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _bad(message: str) -> LipsyncError:
    return LipsyncError(ErrorCode.BAD_OPTION, f"bad multipart body: {message}")


async def read_form(content_type: str, body: AsyncIterator[bytes], folder: Path, limit: int) -> Form:
    """Stream a ``multipart/form-data`` body into ``folder``; raises `TooLarge` past ``limit`` bytes."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            "submit a job as multipart/form-data (files image and audio) or as JSON with paths",
        )
    folder.mkdir(parents=True, exist_ok=True)
    form = Form()
    collector = _Collector(folder, form)
    callbacks = {name: getattr(collector, name) for name in dir(collector) if name.startswith("on_")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise TooLarge
            parser.write(chunk)
        parser.finalize()
    finally:
        collector.close()
    return form
