"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

from ..catalogue import available_models, get_model
from ..checks import check_device


def _model(value: str) -> str:
    get_model(value)  # raises unknown_model with the list of available models
    return value


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", callback=_model, help=f"Model: {', '.join(available_models())}.", show_default=False
    ),
]
ModelArg = Annotated[str, typer.Argument(callback=_model, help="Model name (see `lipsync models`).")]
DeviceOpt = Annotated[str, typer.Option(callback=check_device, help="auto, cpu, cuda, cuda:N or mps.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON result object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")]
