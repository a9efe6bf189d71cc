"""The Typer app, its command groups, and the one error funnel that turns errors into exit codes."""

from __future__ import annotations

import os
import signal
import sys
import traceback

import typer

from .. import __version__
from ..errors import ErrorCode, LipsyncError, exit_status
from ..output import print_error
from . import batch, doctor, envs, models, run, serve, weights
from . import eval as eval_cmd

app = typer.Typer(
    name="lipsync",
    help="Lip-synced talking-head videos from a portrait (image or video) and a speech track.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run")(run.run)
app.command("batch", epilog=batch.EPILOG)(batch.batch)
app.command("eval", epilog=eval_cmd.EPILOG)(eval_cmd.eval_)
app.command("models")(models.list_models)
app.command("doctor")(doctor.doctor)
app.command("serve")(serve.serve)
app.add_typer(envs.app, name="env")
app.add_typer(weights.app, name="weights")


def _version(value: bool) -> None:
    if value:
        print(f"lipsync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """lipsync: one command per model; the first run of a model sets it up."""


def report_error(err: LipsyncError, *, json_mode: bool) -> int:
    """Show an error (`output.print_error`) and return its exit status."""
    print_error(err.code, err.message, err.hint, json_mode=json_mode)
    if os.environ.get("LIPSYNC_DEBUG"):
        traceback.print_exception(err, file=sys.stderr)
    return exit_status(err.code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _quiet_broken_pipe() -> None:
    """Exit as a Unix tool whose reader went away: nothing printed, status 141 (128 + SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush into the closed pipe at exit
    sys.exit(exit_status(ErrorCode.BROKEN_PIPE))


def main() -> None:
    json_mode = "--json" in sys.argv[1:]
    # SIGTERM (kill, a scheduler, a container stop) stops the work as Ctrl-C does: no partial output.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = app(standalone_mode=False)
    except LipsyncError as err:
        if err.code == ErrorCode.BROKEN_PIPE:
            _quiet_broken_pipe()
        sys.exit(report_error(err, json_mode=json_mode))
    except KeyboardInterrupt:
        sys.exit(report_error(LipsyncError(ErrorCode.INTERRUPTED, "interrupted"), json_mode=json_mode))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(report_error(LipsyncError(ErrorCode.INTERRUPTED, "aborted"), json_mode=json_mode))
    except Exception as err:  # click usage errors and anything unexpected
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
    # Without standalone mode, Click turns Ctrl-C into a returned 130 (and an Exit into its code).
    if status == exit_status(ErrorCode.INTERRUPTED):
        sys.exit(report_error(LipsyncError(ErrorCode.INTERRUPTED, "interrupted"), json_mode=json_mode))
    if isinstance(status, int) and status:
        sys.exit(status)
