"""Command-line flags made from the backends' option declarations (one flag per option name).

`with_model_flags` gives a Typer command one flag for every option any model has, with the help,
metavar and defaults of each model taken from the declarations, and hands the command the flags that
were given as one ``options`` dict, ready for `model_options.resolve_options`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from lipsync_kit.options import COMMON_OPTIONS, Option

from ..catalogue import BACKENDS, MODELS
from ..model_options import backend_options, option_specs

__all__ = ["flag_parameters", "with_model_flags"]

_WEIGHTS_PANEL = "Weights (your own files; default: the verified official files)"


def _declarations() -> dict[str, list[tuple[str, Option]]]:
    """Option name -> (backend, declaration) for every backend that has it; common options first."""
    found: dict[str, list[tuple[str, Option]]] = {o.name: [("*", o)] for o in COMMON_OPTIONS}
    for backend in BACKENDS:
        for option in backend_options(backend):
            found.setdefault(option.name, []).append((backend, option))
    return found


def _models_of(name: str) -> list[str]:
    return [model.name for model in MODELS.values() if name in option_specs(model)]


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _default_text(name: str) -> str:
    """``(default: ...)`` naming each model's default where they differ."""
    by_value: dict[str, list[str]] = {}
    for model_name in _models_of(name):
        model = MODELS[model_name]
        option = option_specs(model)[name]
        value = model.defaults.get(name, option.default)
        if value is None or value is False:
            if option.default_note is None:
                continue
            text = option.default_note
        else:
            text = _show(value)
        by_value.setdefault(text, []).append(model_name)
    if not by_value:
        return ""
    if len(by_value) == 1 and len(next(iter(by_value.values()))) == len(_models_of(name)):
        return f" (default: {next(iter(by_value))})"
    parts = [f"{', '.join(models)}: {text}" for text, models in by_value.items()]
    return f" (default: {'; '.join(parts)})"


def _range(option: Option) -> str:
    if option.minimum is not None and option.maximum is not None:
        return f" ({option.minimum:g}..{option.maximum:g})"
    return ""


def _help(name: str, declared: list[tuple[str, Option]]) -> str:
    helps = {option.help + _range(option) for _backend, option in declared}
    if len(helps) == 1:
        text = helps.pop()
    else:
        parts = []
        for backend, option in declared:
            models = ", ".join(m.name for m in MODELS.values() if m.backend == backend)
            parts.append(f"{models}: {option.help}{_range(option)}")
        text = " ".join(parts)
    return text + _default_text(name)


def _panel(name: str, declared: list[tuple[str, Option]]) -> str | None:
    option = declared[0][1]
    if option.target == "request" and option.kind in ("path", "checkpoint"):
        return _WEIGHTS_PANEL
    models = _models_of(name)
    if len(models) == len(MODELS):
        return None
    if len({backend for backend, _ in declared}) == 1:
        return f"Options of {', '.join(models)}"
    return "Options of several models"


def _python_type(declared: list[tuple[str, Option]]) -> tuple[Any, str | None]:
    """The type Typer parses the flag as, and its metavar."""
    kinds = {option.kind for _backend, option in declared}
    option = declared[0][1]
    choices = [c for _backend, o in declared for c in o.choices]
    metavar = option.metavar or ("|".join(dict.fromkeys(map(str, choices))) if choices else None)
    if kinds <= {"quad", "box"}:
        return tuple[int, int, int, int] | None, metavar
    if kinds == {"int"}:
        return int | None, metavar
    if kinds == {"float"}:
        return float | None, metavar
    if kinds == {"bool"}:
        return bool, None
    if kinds == {"path"}:
        return Path | None, metavar or "FILE"
    return str | None, metavar


def flag_parameters() -> list[inspect.Parameter]:
    """One keyword parameter with its ``typer.Option`` for every model option."""
    parameters = []
    for name, declared in _declarations().items():
        python_type, metavar = _python_type(declared)
        flag = typer.Option(
            declared[0][1].flag,
            help=_help(name, declared),
            metavar=metavar,
            rich_help_panel=_panel(name, declared),
            show_default=False,
        )
        default = False if python_type is bool else None
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[python_type, flag]
            )
        )
    return parameters


def with_model_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with every model option as a flag; it gets the flags given as ``options``.

    ``command`` takes a keyword ``options: dict[str, Any]``: the names of the flags that were given (unset
    ones and flags left off are absent, so each model's own defaults apply).
    """
    own = inspect.signature(command, eval_str=True)
    kept = [p for p in own.parameters.values() if p.name != "options"]
    flags = flag_parameters()
    names = [p.name for p in flags]

    @functools.wraps(command)
    def wrapper(**values: Any) -> Any:
        given = {name: values.pop(name) for name in names}
        options = {k: v for k, v in given.items() if v is not None and v is not False}
        return command(**values, options=options)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept] + flags
    wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper
