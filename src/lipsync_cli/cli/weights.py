"""``lipsync weights``: fetch, import, inspect and remove pretrained files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..catalogue import WeightFile, get_model, model_weight_files
from ..output import emit, make_reporter
from ..weights import WeightsStore
from .options import JsonOpt, ModelArg, QuietOpt

app = typer.Typer(help="Manage pretrained weight files (verified by sha256).", no_args_is_help=True)

AllOpt = Annotated[
    bool, typer.Option("--all", help="Every choice of every file (e.g. wav2lip_gan, the 512 renderer).")
]


def _files(model: str, every: bool) -> list[WeightFile]:
    return model_weight_files(get_model(model), every_checkpoint=every)


def _row(store: WeightsStore, wf: WeightFile) -> dict[str, Any]:
    return {
        "name": wf.name,
        "status": store.status(wf),
        "path": str(store.path_for(wf)),
        "size": wf.size,
        "sha256": wf.sha256,
        "license": wf.license,
    }


@app.command("fetch")
def fetch(
    model: ModelArg,
    force: bool = typer.Option(False, "--force", help="Download again even if present."),
    all_: AllOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download and verify the files a model needs (its default options' files; --all: every choice)."""
    store = WeightsStore()
    reporter = make_reporter(json_mode=json_, quiet=quiet)
    paths = [store.fetch(wf, reporter, force=force) for wf in _files(model, all_)]
    rows = [_row(store, wf) for wf in _files(model, all_)]
    emit("weights", {"model": model, "files": rows}, json_mode=json_, lines=map(str, paths))


@app.command("import")
def import_(
    model: ModelArg,
    files: Annotated[list[Path], typer.Argument(help="Files you downloaded yourself.")],
    json_: JsonOpt = False,
) -> None:
    """Verify files fetched by hand and file them in the store."""
    store = WeightsStore()
    candidates = model_weight_files(get_model(model))
    imported = [(path, store.import_file(path.expanduser(), candidates)) for path in files]
    emit(
        "weights_imported",
        {"model": model, "files": [{"source": str(p), **_row(store, wf)} for p, wf in imported]},
        json_mode=json_,
        lines=[f"{p} -> {store.path_for(wf)}" for p, wf in imported],
    )


@app.command("status")
def status(model: ModelArg, json_: JsonOpt = False) -> None:
    """Show which files are present and verified."""
    store = WeightsStore()
    rows = [_row(store, wf) for wf in _files(model, True)]
    lines = [f"{row['status']:<9} {row['name']:<34} {row['path']}" for row in rows]
    emit("weights", {"model": model, "files": rows}, json_mode=json_, lines=lines)


@app.command("path")
def path(model: ModelArg, json_: JsonOpt = False) -> None:
    """Print where a model's files are (or would be) stored."""
    store = WeightsStore()
    rows = [_row(store, wf) for wf in _files(model, True)]
    emit("weights", {"model": model, "files": rows}, json_mode=json_, lines=[row["path"] for row in rows])


@app.command("rm")
def remove(
    model: ModelArg,
    all_: AllOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Delete a model's files from the store (its default options' files; --all: every choice).

    Files another model also uses are deleted too; they are downloaded again when needed.
    """
    store = WeightsStore()
    removed = [(wf, store.remove(wf)) for wf in _files(model, all_)]
    emit(
        "weights_removed",
        {"model": model, "files": [{"name": wf.name, "removed": gone} for wf, gone in removed]},
        json_mode=json_,
        lines=[f"removed {store.path_for(wf)}" if gone else f"{wf.name}: not there" for wf, gone in removed],
    )
