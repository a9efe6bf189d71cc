"""``lipsync env``: build, inspect and remove backend environments."""

from __future__ import annotations

from typing import Any

import typer

from ..catalogue import get_model
from ..envs import BackendEnv
from ..output import emit, make_reporter
from .options import JsonOpt, ModelArg, QuietOpt

app = typer.Typer(help="Manage the per-backend Python environments.", no_args_is_help=True)


def _info(env: BackendEnv) -> dict[str, Any]:
    return {
        "backend": env.name,
        "status": env.status(),
        "path": str(env.env_dir),
        "python": str(env.python),
        "stamp": env.stamp(),
    }


@app.command("build")
def build(
    model: ModelArg,
    force: bool = typer.Option(False, "--force", help="Rebuild even if the environment is up to date."),
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build (or update) the environment a model runs in; prints its Python."""
    env = BackendEnv.named(get_model(model).backend)
    python = env.ensure(make_reporter(json_mode=json_, quiet=quiet), force=force)
    emit("env", _info(env), json_mode=json_, lines=[str(python)])


@app.command("status")
def status(model: ModelArg, json_: JsonOpt = False) -> None:
    """Show whether a model's environment is built and current."""
    env = BackendEnv.named(get_model(model).backend)
    info = _info(env)
    emit("env", info, json_mode=json_, lines=[f"{env.name}: {info['status']} ({info['python']})"])


@app.command("remove")
def remove(model: ModelArg, json_: JsonOpt = False) -> None:
    """Delete a model's environment (it is rebuilt on next use)."""
    env = BackendEnv.named(get_model(model).backend)
    removed = env.remove()
    line = f"removed {env.env_dir}" if removed else f"{env.name}: no environment to remove"
    emit(
        "env_removed",
        {"backend": env.name, "path": str(env.env_dir), "removed": removed},
        json_mode=json_,
        lines=[line],
    )
