"""Render options, declared once per backend and checked the same way by the host and the worker.

Each backend lists its options in ``lipsync_<backend>/options.py`` as a tuple of `Option` (plain data, no
torch). The host reads those declarations to build the ``lipsync run`` flags and their help, and to check
``run`` flags, ``batch`` manifest lines and API requests; the worker checks the ``render`` request against
the same tuple with `resolve`, so both sides agree on every name, default and limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "COMMON_OPTIONS",
    "DURATION_MODES",
    "Option",
    "OptionError",
    "Target",
    "coerce",
    "resolve",
    "video_options",
]

Kind = Literal["int", "float", "bool", "choice", "quad", "box", "floats", "path", "checkpoint"]
Target = Literal["backend", "request"]


class OptionError(ValueError):
    """A value an option cannot take; ``flag`` names the option as people type it."""

    def __init__(self, flag: str, problem: str) -> None:
        super().__init__(f"{flag} {problem}")
        self.flag = flag
        self.problem = problem


@dataclass(frozen=True)
class Option:
    """One option: its JSON type, default, limits and the help people read.

    ``target`` is ``request`` for what the host consumes itself (frame rate, weight files: the host resolves
    and verifies those and sends the worker their paths under ``weights``); ``backend`` options travel to the
    worker as they are. ``kind`` picks the JSON type: ``quad`` is four integers TOP BOTTOM LEFT RIGHT, ``box``
    a quad with top < bottom and left < right, ``floats`` a list of numbers, ``checkpoint`` a path or the name
    of a catalogue checkpoint.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # the allowed values (names for ``choice``, numbers for ``int``)
    minimum: float | None = None  # inclusive, for numbers and every quad entry
    maximum: float | None = None  # inclusive, for numbers
    nullable: bool = False  # None (JSON null) is allowed and means "not set"
    target: Target = "backend"
    metavar: str | None = None
    default_note: str | None = None  # help text for a default that is decided later (``by device``)
    length: int | None = None  # ``floats``: exactly this many numbers

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


COMMON_OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "fps",
        "float",
        None,
        "Frame rate of the output for a still portrait; a video keeps its own.",
        minimum=1e-9,
        nullable=True,
        target="request",
        default_note="25",
    ),
)


DURATION_MODES: Final = ("loop", "pingpong", "freeze", "cut")  # lipsync_kit.timeline implements them


def duration_mode_option(default: str) -> Option:
    """``--duration-mode``, defaulting to the model's official behaviour (Wav2Lip loop, MuseTalk pingpong)."""
    return Option(
        "duration_mode",
        "choice",
        default,
        "When speech and video differ in length: loop the video, pingpong (forwards then backwards), "
        "freeze its last frame, or cut both to the shorter.",
        choices=DURATION_MODES,
    )


def video_options(default_duration_mode: str) -> tuple[Option, ...]:
    """The options of every backend that dubs a video portrait with the kit's streaming video engine.

    Args:
        default_duration_mode: the model's official behaviour (Wav2Lip ``loop``, MuseTalk ``pingpong``).
    """
    return (
        duration_mode_option(default_duration_mode),
        Option(
            "detect_scale",
            "float",
            1.0,
            "Detect faces on frames scaled by this factor (e.g. 0.5) for speed; below 1 the boxes are no "
            "longer frame-identical to the official ones.",
            minimum=0.05,
            maximum=1.0,
        ),
        Option(
            "face_index",
            "int",
            None,
            "Which face when there are several, counted from the left from 0.",
            minimum=0,
            nullable=True,
            default_note="the detector's most confident",
        ),
        Option(
            "face_at",
            "floats",
            None,
            "Dub the face at this pixel X,Y of the first frame that shows faces (followed as it moves).",
            nullable=True,
            metavar="X,Y",
            length=2,
        ),
    )


def _number(option: Option, value: Any, integral: bool) -> int | float:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or (integral and not float(value).is_integer()):
        raise OptionError(option.flag, f"must be {'an integer' if integral else 'a number'}, got {value!r}")
    number = int(value) if integral else float(value)
    if option.choices and number not in option.choices:
        raise OptionError(option.flag, f"must be one of {', '.join(map(str, option.choices))}, got {value!r}")
    if option.minimum is not None and number < option.minimum:
        limit = "positive" if option.minimum in (1, 1e-9) else f">= {option.minimum:g}"
        raise OptionError(option.flag, f"must be {limit}, got {value!r}")
    if option.maximum is not None and number > option.maximum:
        raise OptionError(option.flag, f"must be at most {option.maximum:g}, got {value!r}")
    return number


def _quad(option: Option, value: Any) -> list[int]:
    wrong = OptionError(option.flag, f"must be four integers TOP BOTTOM LEFT RIGHT, got {value!r}")
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) != 4:
        raise wrong
    try:
        numbers = [int(v) if isinstance(v, str) else v for v in items]
    except ValueError:
        raise wrong from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in numbers):
        raise wrong
    if option.minimum is not None and min(numbers) < option.minimum:
        raise OptionError(option.flag, f"must not be negative: {numbers}")
    if option.kind == "box":
        top, bottom, left, right = numbers
        if not (0 <= top < bottom and 0 <= left < right):
            raise OptionError(
                option.flag, f"must be TOP BOTTOM LEFT RIGHT with top < bottom and left < right: {numbers}"
            )
    return numbers


def _floats(option: Option, value: Any) -> list[float]:
    """A list of numbers, from JSON or from text such as ``0,20,-10`` or ``"0 20 -10"``."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if isinstance(items, int | float) and not isinstance(items, bool):
        items = [items]
    wrong = OptionError(option.flag, f"must be a list of numbers such as 0,20,-10, got {value!r}")
    if not isinstance(items, list | tuple):
        raise wrong
    try:
        numbers = [float(v) for v in items if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise wrong from None
    if not numbers or len(numbers) != len(items):
        raise wrong
    if option.length is not None and len(numbers) != option.length:
        example = option.metavar or ",".join(["0"] * option.length)
        raise OptionError(option.flag, f"must be {option.length} numbers such as {example}, got {value!r}")
    return numbers


def coerce(option: Option, value: Any, *, names: Iterable[str] = (), base_dir: Path | None = None) -> Any:
    """``value`` checked and converted to the option's JSON type; raises `OptionError`.

    ``names`` are the checkpoint names a ``checkpoint`` option accepts besides paths; relative paths resolve
    against ``base_dir`` when one is given.
    """
    if value is None:
        if option.nullable:
            return None
        raise OptionError(option.flag, "must be given a value")
    match option.kind:
        case "int" | "float":
            return _number(option, value, integral=option.kind == "int")
        case "bool":
            if not isinstance(value, bool):
                raise OptionError(option.flag, f"must be true or false, got {value!r}")
            return value
        case "choice":
            if value not in option.choices:
                raise OptionError(option.flag, f"must be one of {', '.join(option.choices)}, got {value!r}")
            return value
        case "quad" | "box":
            return _quad(option, value)
        case "floats":
            return _floats(option, value)
        case "path" | "checkpoint":
            if not isinstance(value, str | Path) or not str(value):
                raise OptionError(option.flag, f"must be a file path, got {value!r}")
            if option.kind == "checkpoint" and str(value) in names:
                return str(value)
            path = Path(value).expanduser()
            return str((base_dir / path).absolute() if base_dir is not None else path)
    raise AssertionError(option.kind)


def resolve(
    options: Iterable[Option],
    given: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    names: Iterable[str] = (),
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Every option, from ``given`` or its default (``defaults`` override the declared ones), checked.

    Names in ``given`` that are not options are ignored here; callers that must refuse them compare names
    first. Raises `OptionError` for the first bad value.
    """
    defaults = defaults or {}
    names = tuple(names)
    resolved: dict[str, Any] = {}
    for option in options:
        value = given.get(option.name, defaults.get(option.name, option.default))
        if isinstance(value, tuple):
            value = list(value)
        resolved[option.name] = coerce(option, value, names=names, base_dir=base_dir)
    return resolved
