"""The options each model accepts: names, types, defaults and limits, in one table for ``run`` and ``batch``.

``lipsync run`` gathers its flags into a dict and ``lipsync batch`` reads the same keys from a manifest line's
``options``; both go through `resolve_options`, which rejects unknown names and bad values with
``bad_option`` and fills in the defaults. Options marked ``request`` are host-side fields of a
`~lipsync_cli.render.RenderRequest` (frame rate, checkpoint choices); the rest travel to the backend as-is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from .catalogue import CHECKPOINTS, Model
from .errors import ErrorCode, LipsyncError

__all__ = [
    "BACKEND_OPTIONS",
    "COMMON_OPTIONS",
    "REQUEST_FIELDS",
    "WEIGHT_OPTIONS",
    "OptionSpec",
    "absolute_paths",
    "default",
    "option_specs",
    "parse_assignment",
    "resolve_options",
]

Kind = Literal["int", "float", "bool", "choice", "quad", "floats", "path", "checkpoint"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its JSON type, default and limits."""

    name: str
    kind: Kind
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive lower bound for numbers and every quad entry
    nullable: bool = False  # None (JSON null) is allowed and means "not set"
    check: Callable[[Any], str | None] | None = None  # a further rule; returns the problem, if any
    target: Literal["backend", "request"] = "backend"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _ordered_box(value: list[int]) -> str | None:
    y1, y2, x1, x2 = value
    if 0 <= y1 < y2 and 0 <= x1 < x2:
        return None
    return f"must be TOP BOTTOM LEFT RIGHT with top < bottom and left < right: {value}"


COMMON_OPTIONS: Final[tuple[OptionSpec, ...]] = (
    OptionSpec("fps", "float", None, minimum=1e-9, nullable=True, target="request"),
)

# Keyed by backend name; a model's variant options are fixed and cannot be set (see `option_specs`).
BACKEND_OPTIONS: Final[dict[str, tuple[OptionSpec, ...]]] = {
    "wav2lip": (
        OptionSpec("checkpoint", "checkpoint", None, nullable=True, target="request"),
        OptionSpec("detector_checkpoint", "path", None, nullable=True, target="request"),
        OptionSpec("pads", "quad", (0, 10, 0, 0), minimum=0),
        OptionSpec("box", "quad", None, nullable=True, check=_ordered_box),
        OptionSpec("nosmooth", "bool", False),
        OptionSpec("resize_factor", "int", 1, minimum=1),
        OptionSpec("crop", "quad", (0, -1, 0, -1)),
        OptionSpec("rotate", "bool", False),
        OptionSpec("batch_size", "int", 128, minimum=1),
        OptionSpec("face_det_batch_size", "int", 16, minimum=1),
        OptionSpec("paste", "choice", "blend", choices=("blend", "exact")),
    ),
}


def _one_of(*allowed: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(map(str, allowed))}, got {value}"

    return check


def _at_most(limit: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value <= limit else f"must be at most {limit}, got {value}"

    return check


BACKEND_OPTIONS["sadtalker"] = (
    OptionSpec("checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("mapping_checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("detector_checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("landmark_checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("enhancer_checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("parsing_checkpoint", "path", None, nullable=True, target="request"),
    OptionSpec("preprocess", "choice", "crop", choices=("crop", "extcrop", "resize", "full", "extfull")),
    OptionSpec("size", "int", 256, check=_one_of(256, 512)),
    OptionSpec("pose_style", "int", 0, minimum=0, check=_at_most(45)),
    OptionSpec("expression_scale", "float", 1.0, minimum=0),
    OptionSpec("batch_size", "int", None, minimum=1, nullable=True),  # None: by device (CPU 2, CUDA 16)
    OptionSpec("ref_eyeblink", "path", None, nullable=True),
    OptionSpec("ref_pose", "path", None, nullable=True),
    OptionSpec("input_yaw", "floats", None, nullable=True),
    OptionSpec("input_pitch", "floats", None, nullable=True),
    OptionSpec("input_roll", "floats", None, nullable=True),
    OptionSpec("face_index", "int", None, minimum=0, nullable=True),
    OptionSpec("paste", "choice", "blend", choices=("blend", "poisson")),
    OptionSpec("enhancer", "choice", None, choices=("gfpgan",), nullable=True),
)

# Options that name weight files: resolved by the host (`render.resolve_weights`), never sent as options.
WEIGHT_OPTIONS: Final = frozenset(
    spec.name
    for specs in BACKEND_OPTIONS.values()
    for spec in specs
    if spec.kind in ("path", "checkpoint") and spec.target == "request"
)

REQUEST_FIELDS: Final = frozenset(
    spec.name
    for specs in (COMMON_OPTIONS, *BACKEND_OPTIONS.values())
    for spec in specs
    if spec.target == "request"
)


def option_specs(model: Model) -> dict[str, OptionSpec]:
    """The options a model accepts: the common ones and its backend's, less those its variant fixes,
    with the model's own defaults (e.g. sadtalker-still: ``preprocess`` full)."""
    specs = (*COMMON_OPTIONS, *BACKEND_OPTIONS.get(model.backend, ()))
    return {
        spec.name: replace(spec, default=model.defaults.get(spec.name, spec.default))
        for spec in specs
        if spec.name not in model.variant
    }


def default(backend: str, name: str) -> Any:
    """The default of one option (for CLI declarations, so defaults live here only)."""
    for spec in (*COMMON_OPTIONS, *BACKEND_OPTIONS.get(backend, ())):
        if spec.name == name:
            return spec.default
    raise KeyError(f"{backend} has no option {name!r}")


def _bad(spec: OptionSpec, problem: str) -> LipsyncError:
    return LipsyncError(ErrorCode.BAD_OPTION, f"{spec.flag} {problem}")


def _number(spec: OptionSpec, value: Any, integral: bool) -> int | float:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (integral and not float(value).is_integer()):
        raise _bad(spec, f"must be {'an integer' if integral else 'a number'}, got {value!r}")
    number = int(value) if integral else float(value)
    if spec.minimum is not None and number < spec.minimum:
        limit = "positive" if spec.minimum in (1, 1e-9) else f">= {spec.minimum:g}"
        raise _bad(spec, f"must be {limit}, got {value!r}")
    return number


def _quad(spec: OptionSpec, value: Any) -> list[int] | None:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise _bad(spec, f"must be four integers TOP BOTTOM LEFT RIGHT, got {value!r}")
    try:
        numbers = [int(v) if isinstance(v, str) else v for v in value]
    except ValueError:
        raise _bad(spec, f"must be four integers TOP BOTTOM LEFT RIGHT, got {value!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in numbers):
        raise _bad(spec, f"must be four integers TOP BOTTOM LEFT RIGHT, got {value!r}")
    if spec.nullable and numbers[0] == -1:  # the CLI's "not given" for an optional box
        return None
    if spec.minimum is not None and min(numbers) < spec.minimum:
        raise _bad(spec, f"must not be negative: {numbers}")
    return numbers


def _floats(spec: OptionSpec, value: Any) -> list[float]:
    """A list of numbers, from JSON or from text such as ``0,20,-10`` or ``"0 20 -10"``."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if isinstance(items, int | float) and not isinstance(items, bool):
        items = [items]
    try:
        numbers = [float(v) for v in items if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise _bad(spec, f"must be a list of numbers such as 0,20,-10, got {value!r}") from None
    if not numbers or len(numbers) != len(items):
        raise _bad(spec, f"must be a list of numbers such as 0,20,-10, got {value!r}")
    return numbers


def _coerce(spec: OptionSpec, value: Any, model: Model, base_dir: Path) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise _bad(spec, "must be given a value")
    match spec.kind:
        case "int" | "float":
            return _number(spec, value, integral=spec.kind == "int")
        case "bool":
            if not isinstance(value, bool):
                raise _bad(spec, f"must be true or false, got {value!r}")
            return value
        case "choice":
            if value not in spec.choices:
                raise _bad(spec, f"must be one of {', '.join(spec.choices)}, got {value!r}")
            return value
        case "quad":
            return _quad(spec, value)
        case "floats":
            return _floats(spec, value)
        case "path" | "checkpoint":
            if not isinstance(value, str | Path) or not str(value):
                raise _bad(spec, f"must be a file path, got {value!r}")
            if spec.kind == "checkpoint" and str(value) in CHECKPOINTS.get(model.name, ()):
                return str(value)  # a named checkpoint of the catalogue
            return str((base_dir / Path(value).expanduser()).absolute())
    raise AssertionError(spec.kind)


def resolve_options(model: Model, given: Mapping[str, Any], *, base_dir: Path) -> dict[str, Any]:
    """Check ``given`` against the model's options and return every option with defaults filled in.

    Relative paths resolve against ``base_dir``. Raises `LipsyncError` (``bad_option``) naming the option.
    """
    specs = option_specs(model)
    unknown = sorted(set(given) - set(specs))
    if unknown:
        fixed = [name for name in unknown if name in model.variant]
        if fixed:
            fixed_list = ", ".join(fixed)
            raise LipsyncError(ErrorCode.BAD_OPTION, f"{model.name} fixes {fixed_list}; it cannot be set")
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            f"{model.name} has no option {', '.join(map(repr, unknown))}",
            hint=f"{model.name} options: {', '.join(sorted(specs))}",
        )
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        value = given.get(name, spec.default)
        coerced = _coerce(spec, list(value) if isinstance(value, tuple) else value, model, base_dir)
        if coerced is not None and spec.check is not None and (problem := spec.check(coerced)):
            raise _bad(spec, problem)
        resolved[name] = coerced
    return resolved


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as JSON when it parses, else kept as text."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise LipsyncError(ErrorCode.BAD_OPTION, f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def absolute_paths(model: Model, given: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """``given`` with relative file paths made absolute against ``base_dir``; named checkpoints stay."""
    specs = option_specs(model)
    out = dict(given)
    for name, value in given.items():
        spec = specs.get(name)
        if spec is not None and spec.kind in ("path", "checkpoint") and isinstance(value, str) and value:
            out[name] = _coerce(spec, value, model, base_dir)
    return out
