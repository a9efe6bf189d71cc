"""The options each model accepts, read from the backends' own declarations, for ``run``, ``batch`` and more.

Every backend declares its options once, in ``lipsync_<backend>/options.py`` (a tuple of
`lipsync_kit.options.Option`, plain data). The host reads those files without importing the backend,
builds the ``lipsync run`` flags from them (`cli.model_flags`) and checks flags and manifest lines with
`resolve_options`; the worker checks the same request against the same tuple. Options whose ``target`` is
``request`` are host-side fields of a `~lipsync_cli.render.RenderRequest` (frame rate, weight files).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from lipsync_kit.options import COMMON_OPTIONS, Option, OptionError, coerce, resolve

from . import paths
from .catalogue import BACKENDS, CHECKPOINTS, MODELS, Model
from .errors import ErrorCode, LipsyncError

__all__ = [
    "Option",
    "absolute_paths",
    "backend_options",
    "option_specs",
    "parse_assignment",
    "request_fields",
    "resolve_options",
    "weight_options",
]


@cache
def backend_options(backend: str) -> tuple[Option, ...]:
    """The options a backend declares in its ``options.py`` (read from its sources, not imported with it).

    A backend whose sources are not there has none (it cannot run either; its env build says why).
    """
    package = BACKENDS[backend].package
    source = paths.backends_dir() / backend / package / "options.py"
    if not source.is_file():
        return ()
    spec = importlib.util.spec_from_file_location(f"lipsync_cli._options_{backend}", source)
    if spec is None or spec.loader is None:
        raise LipsyncError(ErrorCode.INTERNAL, f"the {backend} backend declares no options at {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.OPTIONS)


def option_specs(model: Model) -> dict[str, Option]:
    """The options a model accepts: the common ones and its backend's, less those its variant fixes."""
    return {
        option.name: option
        for option in (*COMMON_OPTIONS, *backend_options(model.backend))
        if option.name not in model.variant
    }


def _every_option() -> list[Option]:
    return [*COMMON_OPTIONS, *(option for backend in BACKENDS for option in backend_options(backend))]


def request_fields() -> frozenset[str]:
    """Option names the host consumes itself (frame rate, weight files)."""
    return frozenset(option.name for option in _every_option() if option.target == "request")


def weight_options() -> frozenset[str]:
    """Options that name weight files: resolved by the host (`render.resolve_weights`), never sent as such."""
    return frozenset(
        option.name
        for option in _every_option()
        if option.kind in ("path", "checkpoint") and option.target == "request"
    )


def _bad(err: OptionError) -> LipsyncError:
    return LipsyncError(ErrorCode.BAD_OPTION, str(err))


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
    try:
        return resolve(
            specs.values(),
            given,
            defaults=model.defaults,
            names=CHECKPOINTS.get(model.name, ()),
            base_dir=base_dir,
        )
    except OptionError as err:
        raise _bad(err) from None


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
            try:
                out[name] = coerce(spec, value, names=CHECKPOINTS.get(model.name, ()), base_dir=base_dir)
            except OptionError as err:
                raise _bad(err) from None
    return out


def models_with(name: str) -> list[Model]:
    """The models that accept the option ``name``."""
    return [model for model in MODELS.values() if name in option_specs(model)]
