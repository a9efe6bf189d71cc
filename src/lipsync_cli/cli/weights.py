"""``lipsync weights``: fetch, import and inspect pretrained files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..catalogue import get_model, model_weight_files
from ..output import make_reporter, print_json
from ..weights import WeightsStore
from .options import JsonOpt, ModelArg

app = typer.Typer(help="Manage pretrained weight files (verified by sha256).", no_args_is_help=True)


@app.command("fetch")
def fetch(
    model: ModelArg,
    force: bool = typer.Option(False, "--force", help="Download again even if present."),
    all_: bool = typer.Option(
        False, "--all", help="Also fetch the alternative checkpoints (e.g. wav2lip_gan)."
    ),
) -> None:
    """Download and verify the files a model needs."""
    store = WeightsStore()
    reporter = make_reporter()
    for wf in model_weight_files(get_model(model), every_checkpoint=all_):
        print(store.fetch(wf, reporter, force=force))


@app.command("import")
def import_(
    model: ModelArg,
    files: Annotated[list[Path], typer.Argument(help="Files you downloaded yourself.")],
) -> None:
    """Verify files fetched by hand and file them in the store."""
    store = WeightsStore()
    candidates = model_weight_files(get_model(model))
    for path in files:
        wf = store.import_file(path.expanduser(), candidates)
        print(f"{path} -> {store.path_for(wf)}")


@app.command("status")
def status(model: ModelArg, json_: JsonOpt = False) -> None:
    """Show which files are present and verified."""
    store = WeightsStore()
    rows = [
        {
            "name": wf.name,
            "status": store.status(wf),
            "path": str(store.path_for(wf)),
            "size": wf.size,
            "sha256": wf.sha256,
        }
        for wf in model_weight_files(get_model(model))
    ]
    if json_:
        print_json("weights", {"model": model, "files": rows})
        return
    for row in rows:
        print(f"{row['status']:<9} {row['name']:<22} {row['path']}")


@app.command("path")
def path(model: ModelArg) -> None:
    """Print where a model's files are (or would be) stored."""
    store = WeightsStore()
    for wf in model_weight_files(get_model(model)):
        print(store.path_for(wf))
