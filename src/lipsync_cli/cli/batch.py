"""``lipsync batch``: render every line of a JSON-lines manifest with warm workers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from ..batch.manifest import Defaults, check_defaults
from ..batch.plan import Shard
from ..batch.runner import BatchOptions, Summary, run_batch
from ..catalogue import available_models, get_model
from ..errors import ErrorCode, LipsyncError, Outcome, exit_status
from ..evaluation import BatchScorer
from ..model_options import parse_assignment
from ..output import Reporter, emit, make_reporter, print_table
from ..serve.client import server_url
from .options import DeviceOpt, QuietOpt

EPILOG = (
    "Exit status: 0 when no job failed, 1 when any did, 65 when --check finds a bad line, "
    "130 when interrupted (the results file then lets --resume continue)."
)


def _print_summary(summary: Summary, reporter: Reporter) -> None:
    body = summary.to_dict()
    rows = [
        (model, *(str(row[k]) for k in ("ok", "error", "skipped", "frames")), f"{row['seconds']:.1f}")
        for model, row in body["models"].items()
    ]
    print_table(("model", "ok", "error", "skipped", "frames", "job seconds"), rows, stderr=True)
    starts = ", ".join(f"{backend} {n}" for backend, n in body["worker_starts"].items()) or "none"
    reporter.info(
        f"{body['ok']} ok, {body['error']} failed, {body['skipped']} skipped"
        + (f", {body['low_sync']} low_sync" if body["low_sync"] else "")
        + (f", {body['pending']} not rendered (interrupted)" if summary.interrupted else "")
        + f" in {body['wall_seconds']:.1f} s; worker starts: {starts}"
    )


def batch(
    manifest: Annotated[str, typer.Argument(help="JSON-lines manifest, or - for stdin.", show_default=False)],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help=f"Model for lines without one: {', '.join(available_models())}."),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-O", metavar="KEY=VALUE", help="Default model option (JSON value), repeatable."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for lines without one.")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Lines without an output render to DIR/<id>.mp4.")
    ] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[
        int | None,
        typer.Option(help="Workers per model (default: one per GPU; on CPUs one per 4 cores, at most 4)."),
    ] = None,
    results: Annotated[
        Path | None, typer.Option(help="Append one JSON result per job to this file (needed by --resume).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Skip jobs that --results records as done with unchanged inputs."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "-y", help="Replace outputs that already exist.")
    ] = False,
    shard: Annotated[
        str, typer.Option(metavar="INDEX/COUNT", help="Render only shard INDEX (0-based) of COUNT.")
    ] = "0/1",
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Render on Ray: 'local' (a private instance), 'auto' or HOST:PORT (a running cluster).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Submit the jobs to the lipsync server at URL (lipsync serve) instead of starting workers.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only validate the manifest; render nothing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON result per job on stdout.")] = False,
    quiet: QuietOpt = False,
    eval_: Annotated[
        bool, typer.Option("--eval", help="Score each output's lip sync (lipsync eval) into its result.")
    ] = False,
    min_lse_c: Annotated[
        float | None,
        typer.Option(help="With --eval: mark jobs whose LSE-C is below this as low_sync (outputs kept)."),
    ] = None,
) -> None:
    """Render many clips from a manifest: one warm worker per model and device, results as JSON lines."""
    if resume and results is None:
        raise LipsyncError(
            ErrorCode.BAD_OPTION, "--resume needs --results FILE: the results of the run to continue"
        )
    if workers is not None and workers < 1:
        raise LipsyncError(ErrorCode.BAD_OPTION, f"--workers must be at least 1, got {workers}")
    if model is not None:
        get_model(model)  # unknown_model, with the list, before anything is read
    cwd = Path.cwd()
    defaults_given: dict[str, Any] = dict(parse_assignment(text) for text in option or [])
    defaults = Defaults(
        model=model,
        options=check_defaults(defaults_given, cwd),
        seed=seed,
        output_dir=output_dir.expanduser().absolute() if output_dir else None,
        overwrite=overwrite,
    )
    options = BatchOptions(
        manifest=manifest,
        defaults=defaults,
        device=device,
        workers=workers,
        results=results.expanduser().absolute() if results else None,
        resume=resume,
        shard=Shard.parse(shard),
        ray=ray,
        check_only=check,
        server=server_url(server),
    )
    reporter = make_reporter(json_mode=json_, quiet=quiet)
    if min_lse_c is not None and not eval_:
        raise LipsyncError(ErrorCode.BAD_OPTION, "--min-lse-c needs --eval")
    if eval_ and ray is not None:
        raise LipsyncError(ErrorCode.BAD_OPTION, "--eval runs on this machine; it cannot be used with --ray")
    scorer = BatchScorer(reporter, device=device, min_lse_c=min_lse_c) if eval_ else None
    options = dataclasses.replace(options, scorer=scorer)

    def sink(record: dict[str, Any]) -> None:
        body = {k: v for k, v in record.items() if k not in ("schema", "kind")}
        done = record["status"] in ("ok", "low_sync")
        emit("job", body, json_mode=json_, lines=[record["output"]] if done else [])

    try:
        summary = run_batch(options, reporter, sink)  # SIGTERM stops it as Ctrl-C does (cli.app.main)
    finally:
        if scorer is not None:
            scorer.close()
    if json_:
        emit("summary", summary.to_dict(), json_mode=True)
    if not quiet:
        _print_summary(summary, reporter)
    if summary.interrupted:
        raise LipsyncError(
            ErrorCode.INTERRUPTED,
            f"interrupted with {summary.pending} job(s) not rendered",
            hint="run again with --resume to continue" if results else "pass --results FILE to resume later",
        )
    if check and summary.failed:
        raise typer.Exit(exit_status(ErrorCode.BAD_INPUT))
    if summary.failed:
        raise typer.Exit(exit_status(Outcome.JOBS_FAILED))
