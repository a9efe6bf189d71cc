"""A submission checked before it is queued: model, options, input paths and that the inputs decode."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..catalogue import CHECKPOINTS, get_model
from ..errors import ErrorCode, LipsyncError
from ..model_options import option_specs, resolve_options
from ..render import check_audio, check_face
from .config import ServeConfig
from .service import JobSpec
from .statuses import ApiCode, ApiError

__all__ = ["allowed_path", "check_submission"]

_FORMATS = ("mp4", "mkv")


def allowed_path(value: str, config: ServeConfig, what: str) -> Path:
    """A file named by a client, resolved (``..`` and links followed), that must lie under --allow-paths."""
    if not config.allow_paths:
        raise ApiError(
            ApiCode.FORBIDDEN_PATH,
            f"{what}: this server takes uploads only, not paths",
            hint="upload the file, or start the server with --allow-paths DIR",
        )
    raw = Path(value).expanduser()
    path = (raw if raw.is_absolute() else config.allow_paths[0] / raw).resolve()
    if not any(path.is_relative_to(folder) for folder in config.allow_paths):
        raise ApiError(
            ApiCode.FORBIDDEN_PATH,
            f"{what}: {value} is outside the folders this server may read",
            hint="allowed: " + ", ".join(map(str, config.allow_paths)),
        )
    return path


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as err:
            raise LipsyncError(ErrorCode.BAD_OPTION, f"{what} is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise LipsyncError(ErrorCode.BAD_OPTION, f"{what} must be a JSON object, got {value!r}")
    return value


def _seed(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise LipsyncError(ErrorCode.BAD_OPTION, f"seed must be an integer, got {value!r}") from None


def check_submission(
    fields: Mapping[str, Any], face: Path, audio: Path, config: ServeConfig, *, uploaded: bool
) -> JobSpec:
    """Check a submission the way ``lipsync run`` checks its flags; raises `LipsyncError` / `ApiError`."""
    model = get_model(str(fields.get("model") or ""))
    fmt = str(fields.get("format") or "mp4")
    if fmt not in _FORMATS:
        raise LipsyncError(ErrorCode.BAD_OPTION, f"format must be mp4 or mkv, got {fmt!r}")
    device = str(fields.get("device") or "auto")
    if device not in ("auto", config.device):
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            f"this server renders on device {config.device!r}, not {device!r}",
            hint="leave the device out, or start a server with --device " + device,
        )
    given = _json_object(fields.get("options", {}), "options")
    base_dir = config.allow_paths[0] if config.allow_paths else config.home
    options = resolve_options(model, given, base_dir=base_dir)
    specs, named = option_specs(model), CHECKPOINTS.get(model.name, ())
    for name, value in options.items():
        if specs[name].kind in ("path", "checkpoint") and value is not None and value not in named:
            options[name] = str(allowed_path(str(value), config, specs[name].flag))
    check_face(face)
    check_audio(audio)
    return JobSpec(
        model=model.name,
        face=str(face),
        audio=str(audio),
        options=options,
        seed=_seed(fields.get("seed")),
        format=fmt,
        uploaded=uploaded,
    )
