"""``lipsync env``: build, inspect and remove backend environments."""

from __future__ import annotations

import typer

from ..catalogue import get_model
from ..envs import BackendEnv
from ..output import make_reporter, print_json
from .options import JsonOpt, ModelArg

app = typer.Typer(help="Manage the per-backend Python environments.", no_args_is_help=True)


@app.command("build")
def build(
    model: ModelArg,
    force: bool = typer.Option(False, "--force", help="Rebuild even if the environment is up to date."),
) -> None:
    """Build (or update) the environment a model runs in."""
    env = BackendEnv.named(get_model(model).backend)
    python = env.ensure(make_reporter(), force=force)
    print(python)


@app.command("status")
def status(model: ModelArg, json_: JsonOpt = False) -> None:
    """Show whether a model's environment is built and current."""
    env = BackendEnv.named(get_model(model).backend)
    info = {
        "backend": env.name,
        "status": env.status(),
        "path": str(env.env_dir),
        "python": str(env.python),
        "stamp": env.stamp(),
    }
    if json_:
        print_json("env", info)
    else:
        print(f"{env.name}: {info['status']} ({info['python']})")


@app.command("remove")
def remove(model: ModelArg) -> None:
    """Delete a model's environment (it is rebuilt on next use)."""
    env = BackendEnv.named(get_model(model).backend)
    print(f"removed {env.env_dir}" if env.remove() else f"{env.name}: no environment to remove")
