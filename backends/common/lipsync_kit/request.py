"""The part of a ``render`` request every backend reads the same way: inputs and destination."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from .errors import BackendError
from .options import Option, OptionError, resolve
from .protocol import ErrorCode

__all__ = ["RenderParams", "missing_weights"]


def missing_weights(role: str) -> BackendError:
    """The error for a request that needs weights the host did not send: a host bug, not user input.

    The host sends only the roles the options use (no detector with ``--box``); a backend that then
    needs one of the others has disagreed with the catalogue.
    """
    return BackendError(
        ErrorCode.INTERNAL,
        f"this request needs the {role!r} weights, but the host sent none",
        hint="a bug in lipsync: the catalogue's weight roles and the backend disagree; please report it",
    )


@dataclass(frozen=True)
class RenderParams:
    """Face and audio files, the output (a path, or a descriptor for ``-o -``), its format and overwrite.

    Backends subclass it with their own options and build it with ``cls(**RenderParams.common(params),
    ...)``.
    """

    face: Path
    audio: Path
    output: Path | None
    output_fd: int | None
    format: str
    overwrite: bool

    @staticmethod
    def common(params: dict[str, Any]) -> dict[str, Any]:
        """The common fields from the protocol's ``params`` (KeyError when face or audio is missing)."""
        return {
            "face": Path(params["face"]),
            "audio": Path(params["audio"]),
            "output": Path(params["output"]) if params.get("output") else None,
            "output_fd": params.get("output_fd"),
            "format": params.get("format", "mp4"),
            "overwrite": bool(params.get("overwrite", False)),
        }

    @staticmethod
    def declared(params: dict[str, Any], options: Iterable[Option]) -> dict[str, Any]:
        """The backend's own options from ``params``, checked against its declarations, defaults filled in.

        Lists become tuples and file options `Path`; a bad value is ``bad_option``.
        """
        own = [option for option in options if option.target == "backend"]
        try:
            values = resolve(own, params)
        except OptionError as err:
            raise BackendError(ErrorCode.BAD_OPTION, str(err)) from None
        files = {option.name for option in own if option.kind == "path"}
        for name, value in values.items():
            if name in files and value:
                values[name] = Path(value)
            elif isinstance(value, list):
                values[name] = tuple(value)
        return values

    @overload
    @staticmethod
    def weight(params: dict[str, Any], role: str, *, required: Literal[True] = ...) -> Path: ...
    @overload
    @staticmethod
    def weight(params: dict[str, Any], role: str, *, required: Literal[False]) -> Path | None: ...
    @staticmethod
    def weight(params: dict[str, Any], role: str, *, required: bool = True) -> Path | None:
        """The file sent for a weight role; None for an optional role that was not sent.

        Raises:
            BackendError: ``internal`` (`missing_weights`) when a required role is absent.
        """
        path = params.get("weights", {}).get(role)
        if path:
            return Path(path)
        if required:
            raise missing_weights(role)
        return None

    @property
    def target(self) -> Path | int:
        """Where the video goes: the output path, else the descriptor."""
        target = self.output if self.output is not None else self.output_fd
        if target is None:
            raise BackendError(ErrorCode.BAD_OPTION, "the request names no output")
        return target
