"""The batch manifest: one JSON object per line, each line checked on its own and named by its number.

A line is ``{"id", "image", "audio", "output", "model", "options", "seed"}``; relative paths resolve
against the manifest's folder (the working directory for ``-``). The command line supplies defaults for
``model``, ``options``, ``seed`` and (through ``--output-dir``) ``output``; a line's own values win.
Parsing checks the schema, ids, options and output names of every line; `check_inputs` then checks that
the media files of the lines that will render exist and decode.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ..catalogue import MODELS, get_model
from ..checks import REFERENCE_OPTIONS, check_audio, check_face, check_face_size, check_reference
from ..errors import ErrorCode, LipsyncError
from ..model_options import absolute_paths, option_specs, resolve_options
from ..render import OutputTarget, RenderRequest, container_for

__all__ = [
    "Defaults",
    "Job",
    "LineError",
    "check_defaults",
    "check_inputs",
    "parse_manifest",
    "read_manifest",
    "with_overwrite",
]

FIELDS: Final = ("id", "image", "audio", "output", "model", "options", "seed")
_ID: Final = re.compile(r"[^/\\\x00-\x1f]+")
_PROBE_THREADS: Final = 8  # probing is ffmpeg subprocesses; a few at once hides their start-up time


@dataclass(frozen=True)
class Defaults:
    """What the command line gives every line that does not say otherwise."""

    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # paths already absolute (`check_defaults`)
    seed: int | None = None
    output_dir: Path | None = None  # a line without ``output`` renders to ``<output_dir>/<id>.mp4``
    overwrite: bool = False


@dataclass(frozen=True)
class Job:
    """One line that passed every check: a render request with its id and line number."""

    id: str
    line: int
    request: RenderRequest

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def output(self) -> Path:
        assert self.request.output.path is not None  # batch outputs are files, never streams
        return self.request.output.path


@dataclass(frozen=True)
class LineError:
    """A line that cannot render, with the reason; it fails alone."""

    line: int
    id: str | None
    code: str
    message: str
    hint: str | None = None
    model: str | None = None
    output: Path | None = None


def read_manifest(source: str) -> tuple[list[str], Path]:
    """The lines of a manifest file (or ``-`` for stdin) and the folder its relative paths start from."""
    if source == "-":
        return sys.stdin.read().splitlines(), Path.cwd()
    path = Path(source).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"the manifest {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"cannot read the manifest {path}: {err}") from err
    return text.splitlines(), path.parent


def check_defaults(options: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Check ``--option`` values against every model that has them; return them with absolute paths.

    An option no model has is a usage error; a line applies only the defaults its model has.
    """
    known = {name for model in MODELS.values() for name in option_specs(model)}
    if unknown := sorted(set(options) - known):
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            f"no model has the option {', '.join(map(repr, unknown))}",
            hint=f"options: {', '.join(sorted(known))}",
        )
    checked = dict(options)
    for model in MODELS.values():
        mine = {k: v for k, v in options.items() if k in option_specs(model)}
        if mine:
            resolve_options(model, mine, base_dir=base_dir)  # raises bad_option for a bad value
            checked.update(absolute_paths(model, mine, base_dir))
    return checked


def parse_manifest(lines: Iterable[str], base_dir: Path, defaults: Defaults) -> list[Job | LineError]:
    """Every non-blank line as a `Job` or a `LineError`, in manifest order (no file is opened yet)."""
    entries: list[Job | LineError] = []
    first_line_of_id: dict[str, int] = {}
    first_line_of_output: dict[Path, int] = {}  # resolved: out/../out/a.mp4 is out/a.mp4
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        body: Any = None
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise LipsyncError(ErrorCode.BAD_INPUT, "a line must be a JSON object")
            job = _job(body, number, base_dir, defaults)
            if job.id in first_line_of_id:
                raise LipsyncError(
                    ErrorCode.BAD_INPUT, f"duplicate id {job.id!r} (first on line {first_line_of_id[job.id]})"
                )
            first_line_of_id[job.id] = number
            written = job.output.resolve()
            if written in first_line_of_output:
                raise LipsyncError(
                    ErrorCode.BAD_OPTION,
                    f"output {job.output} is also written by line {first_line_of_output[written]}",
                )
            first_line_of_output[written] = number
            entries.append(job)
        except json.JSONDecodeError as err:
            entries.append(
                LineError(number, None, ErrorCode.BAD_INPUT, f"line {number}: not JSON ({err.msg})")
            )
        except LipsyncError as err:
            entries.append(_line_error(number, body, err, defaults.model))
    return _outputs_not_inputs(entries)


def _inputs(job: Job) -> dict[str, Path]:
    """The files a job reads, by what they are: image, audio and reference videos."""
    found = {"image": job.request.face, "audio": job.request.audio}
    for option in REFERENCE_OPTIONS:
        if (value := job.request.options.get(option)) is not None:
            found[option] = Path(value)
    return found


def _outputs_not_inputs(entries: list[Job | LineError]) -> list[Job | LineError]:
    """A job whose output is a file any line reads fails: rendering it would replace that input."""
    read_by: dict[Path, tuple[int, str]] = {}
    for entry in entries:
        if isinstance(entry, Job):
            for what, path in _inputs(entry).items():
                read_by.setdefault(path.resolve(), (entry.line, what))
    checked: list[Job | LineError] = []
    for entry in entries:
        if isinstance(entry, Job) and (reader := read_by.get(entry.output.resolve())) is not None:
            line, what = reader
            owner = "its own" if line == entry.line else f"line {line}'s"
            entry = LineError(
                entry.line,
                entry.id,
                ErrorCode.BAD_OPTION,
                f"line {entry.line}: output {entry.output} is {owner} {what} input",
                None,
                entry.model,
                entry.output,
            )
        checked.append(entry)
    return checked


def check_inputs(entries: list[Job | LineError]) -> list[Job | LineError]:
    """Jobs whose image, audio or reference video is missing or does not decode, or whose picture is too
    small to find a face in, become `LineError`s (each file is checked once, however many lines use it)."""
    jobs = [e for e in entries if isinstance(e, Job)]
    unique = list(dict.fromkeys(check for job in jobs for check in _file_checks(job)))
    with ThreadPoolExecutor(_PROBE_THREADS) as pool:
        outcomes = dict(zip(unique, pool.map(_outcome, unique), strict=True))
    checked: list[Job | LineError] = []
    for entry in entries:
        if isinstance(entry, Job):
            err = next((e for c in _file_checks(entry) if isinstance(e := outcomes[c], LipsyncError)), None)
            if err is None:
                size = outcomes[("face", entry.request.face)]
                assert isinstance(size, tuple)
                err = _outcome(("size", (entry.request.model, size, entry.request.options)))
            if isinstance(err, LipsyncError):
                message = f"line {entry.line}: {err.message}"
                entry = LineError(
                    entry.line, entry.id, err.code, message, err.hint, entry.model, entry.output
                )
        checked.append(entry)
    return checked


def _file_checks(job: Job) -> list[tuple[str, Path]]:
    """(check, file) pairs of a job, in the order their errors are reported."""
    checks = [("face", job.request.face), ("audio", job.request.audio)]
    return checks + [(option, path) for option, path in _inputs(job).items() if option in REFERENCE_OPTIONS]


# ------------------------------------------------------------------------------------- one line


def _job(body: dict[str, Any], number: int, base_dir: Path, defaults: Defaults) -> Job:
    if unknown := sorted(set(body) - set(FIELDS)):
        raise LipsyncError(
            ErrorCode.BAD_INPUT,
            f"unknown field {', '.join(map(repr, unknown))}",
            hint=f"fields: {', '.join(FIELDS)}",
        )
    job_id = _id(body.get("id"))
    model = get_model(_text(body, "model", defaults.model))
    line_options = body.get("options", {})
    if not isinstance(line_options, dict):
        raise LipsyncError(ErrorCode.BAD_INPUT, f"'options' must be a JSON object, got {line_options!r}")
    seed = body.get("seed", defaults.seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise LipsyncError(ErrorCode.BAD_INPUT, f"'seed' must be an integer, got {seed!r}")
    accepted = option_specs(model)
    given = {k: v for k, v in defaults.options.items() if k in accepted} | line_options
    options = resolve_options(model, given, base_dir=base_dir)
    output = _output(body, job_id, base_dir, defaults)
    request = RenderRequest.from_options(
        options=options,
        model=model.name,
        face=_path(base_dir, _text(body, "image")),
        audio=_path(base_dir, _text(body, "audio")),
        output=output,
        overwrite=defaults.overwrite,
        seed=seed,
    )
    return Job(job_id, number, request)


def _id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise LipsyncError(ErrorCode.BAD_INPUT, "every line needs an 'id' (a non-empty string)")
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise LipsyncError(
            ErrorCode.BAD_INPUT, f"id {value!r} must not contain slashes or control characters"
        )
    return value


def _text(body: dict[str, Any], key: str, fallback: str | None = None) -> str:
    value = body.get(key, fallback)
    if value is None:
        hint = {"model": "or pass --model", "output": "or pass --output-dir DIR"}.get(key)
        raise LipsyncError(ErrorCode.BAD_INPUT, f"missing {key!r}", hint=hint)
    if not isinstance(value, str) or not value:
        raise LipsyncError(ErrorCode.BAD_INPUT, f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _path(base_dir: Path, value: str) -> Path:
    return (base_dir / Path(value).expanduser()).absolute()


def _output(body: dict[str, Any], job_id: str, base_dir: Path, defaults: Defaults) -> OutputTarget:
    if "output" not in body and defaults.output_dir is not None:
        path = (defaults.output_dir / f"{job_id}.mp4").absolute()
    else:
        value = _text(body, "output")
        if value == "-" or "%" in Path(value).name:
            raise LipsyncError(
                ErrorCode.BAD_OPTION, f"batch outputs are video files (.mp4, .mkv), not {value!r}"
            )
        path = _path(base_dir, value)
    container = container_for(path)
    if container is None:
        raise LipsyncError(
            ErrorCode.BAD_OPTION,
            f"cannot tell the container of {path.name!r} from its extension",
            hint="use .mp4 or .mkv",
        )
    folder = path.parent
    while not folder.exists():  # missing folders are made before the job renders
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"the output folder {folder} is not writable")
    return OutputTarget(path, container)


def _line_error(number: int, body: Any, err: LipsyncError, default_model: str | None) -> LineError:
    job_id, model = None, default_model
    if isinstance(body, dict):
        raw_id = body.get("id")
        job_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
        raw_model = body.get("model")
        model = raw_model if isinstance(raw_model, str) else model
    return LineError(number, job_id, err.code, f"line {number}: {err.message}", err.hint, model)


def _outcome(check: tuple[str, Any]) -> Any:
    """The result of one check (the picture's size for ``face``), or the `LipsyncError` it raised."""
    kind, value = check
    try:
        if kind == "face":
            return check_face(value)
        if kind == "audio":
            return check_audio(value)
        if kind == "size":
            return check_face_size(*value)
        return check_reference(value, kind)
    except LipsyncError as err:
        return err


def with_overwrite(job: Job) -> Job:
    """The job allowed to replace its output (one an earlier run of this batch wrote)."""
    return replace(job, request=replace(job.request, overwrite=True))
