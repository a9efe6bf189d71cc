"""A batch from manifest to results: check every line, decide what to skip, render the rest, record all.

The library call behind ``lipsync batch``. Every line of this shard is checked before anything renders;
a line that fails a check is recorded as an error on its own and the others go on. Jobs are grouped per
backend and rendered by warm workers, locally (`pool.run_local`) or on Ray (`ray_runner.run_ray`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalogue import get_model
from ..envs import BackendEnv
from ..errors import ErrorCode, LipsyncError
from ..output import Reporter
from ..render import resolve_weights
from .manifest import Defaults, Job, LineError, check_inputs, parse_manifest, read_manifest, with_overwrite
from .plan import Shard, group_by_backend, worker_slots
from .pool import run_local
from .slot import Outcome
from .state import (
    FileDigests,
    ResultsLog,
    error_record,
    fingerprint,
    is_done,
    line_error_record,
    load_results,
    ok_record,
    skipped_record,
)

__all__ = ["BatchOptions", "Summary", "run_batch"]

RecordSink = Callable[[dict[str, Any]], None]
# Adds to the record of a rendered job, given the render's own record (``batch --eval``: the SyncNet scores).
RecordScorer = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class BatchOptions:
    manifest: str  # a path, or "-" for stdin
    defaults: Defaults = field(default_factory=Defaults)
    device: str = "auto"
    workers: int | None = None  # per backend; None: one per GPU, or a CPU default
    results: Path | None = None
    resume: bool = False
    shard: Shard = field(default_factory=Shard)
    ray: str | None = None  # a Ray address ("local" for a private instance); None renders here
    check_only: bool = False  # validate and plan, render nothing
    server: str | None = None  # the URL of a lipsync server that renders the jobs instead
    scorer: RecordScorer | None = None


@dataclass
class Summary:
    """Counts per model and status, worker starts per backend, and where the time went."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, status) -> jobs
    seconds: Counter[str] = field(default_factory=Counter)  # model -> job seconds
    render_seconds: float = 0.0  # what the workers spent rendering (model loads not included)
    frames: Counter[str] = field(default_factory=Counter)
    worker_starts: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    interrupted: bool = False
    pending: int = 0  # jobs not rendered because the batch was interrupted

    def count(self, status: str) -> int:
        return sum(n for (_, s), n in self.statuses.items() if s == status)

    @property
    def failed(self) -> bool:
        return self.count("error") > 0

    def to_dict(self) -> dict[str, Any]:
        models = sorted({m for m, _ in self.statuses})
        return {
            "ok": self.count("ok"),
            "error": self.count("error"),
            "skipped": self.count("skipped"),
            "low_sync": self.count("low_sync"),
            "pending": self.pending,
            "interrupted": self.interrupted,
            "models": {
                m: {
                    "ok": self.statuses[(m, "ok")],
                    "error": self.statuses[(m, "error")],
                    "skipped": self.statuses[(m, "skipped")],
                    "seconds": round(self.seconds[m], 3),
                    "frames": self.frames[m],
                }
                for m in models
            },
            "worker_starts": self.worker_starts,
            "wall_seconds": round(self.wall_seconds, 3),
            "render_seconds": round(self.render_seconds, 3),
        }


class _Recorder:
    """Writes each record to the results file and the sink, counts it and shows a line for it."""

    def __init__(
        self,
        log: ResultsLog | None,
        sink: RecordSink,
        reporter: Reporter,
        summary: Summary,
        scorer: RecordScorer | None = None,
    ) -> None:
        self.scorer = scorer
        self.log = log
        self.sink = sink
        self.reporter = reporter
        self.summary = summary
        self.fingerprints: dict[str, str] = {}

    def __call__(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)
        self.sink(record)
        model = record.get("model") or "(no model)"
        self.summary.statuses[(model, record["status"])] += 1
        self.summary.seconds[model] += record.get("seconds") or 0.0
        if record["status"] == "ok":
            self.summary.frames[model] += record.get("frames") or 0
        label = record["id"] if record["id"] is not None else f"line {record['line']}"
        if record["status"] == "error":
            error = record["error"]
            prefix = f"{record['id']}: " if record["id"] is not None else ""
            self.reporter.warn(f"{prefix}[{error['code']}] {error['message']}")
        elif record["status"] == "ok":
            self.reporter.info(f"ok      {label} ({record['seconds']:.1f} s, {record['frames']} frames)")

    def outcome(self, outcome: Outcome) -> None:
        job = outcome.job
        for warning in outcome.warnings:
            self.reporter.warn(f"{job.id}: {warning}")
        fp = self.fingerprints.get(job.id)
        if outcome.rendered is not None and fp is not None:
            timings = outcome.rendered["seconds"]
            self.summary.render_seconds += sum(
                v for k, v in timings.items() if k not in ("weights", "worker_start", "model_load")
            )
            record = ok_record(job, outcome.rendered, fp, outcome.seconds)
            self(self.scorer(record, outcome.rendered) if self.scorer is not None else record)
        else:
            err = outcome.lipsync_error or LipsyncError(ErrorCode.INTERNAL, "no result")
            if err.code == ErrorCode.WORKER_CRASHED:
                self.reporter.warn(f"the worker crashed on {job.id}; a new one takes the next job")
            self(error_record(job, err, fp, outcome.seconds))


def _triage(
    entries: list[Job | LineError], previous: dict[str, dict[str, Any]], recorder: _Recorder
) -> list[Job]:
    """Record failed lines and skipped jobs; return the jobs to render."""
    digests = FileDigests()
    to_render: list[Job] = []
    for entry in entries:
        if isinstance(entry, LineError):
            recorder(line_error_record(entry))
            continue
        fp = fingerprint(entry, digests)
        recorder.fingerprints[entry.id] = fp
        earlier = previous.get(entry.id)
        if is_done(earlier, fp, entry.output):
            assert earlier is not None
            recorder(skipped_record(entry, earlier, fp))
        elif not entry.output.exists() or entry.request.overwrite:
            to_render.append(entry)
        elif earlier is not None and earlier.get("output") == str(entry.output):
            to_render.append(with_overwrite(entry))  # this batch wrote it; its inputs have changed since
        else:
            err = LipsyncError(
                ErrorCode.OUTPUT_EXISTS,
                f"line {entry.line}: {entry.output} already exists",
                hint="pass --overwrite, or --resume with the results file of the run that wrote it",
            )
            recorder(error_record(entry, err, fp))
    return to_render


def _prepare_local(jobs: list[Job], reporter: Reporter, recorder: _Recorder) -> list[Job]:
    """Build each backend env and fetch each weight file once; jobs whose setup failed are recorded."""
    ready: list[Job] = []
    failed_envs: dict[str, LipsyncError] = {}
    weights_checked: dict[tuple[str, str], LipsyncError | None] = {}
    built: set[str] = set()
    for job in jobs:
        model = get_model(job.model)
        if model.backend not in built:
            built.add(model.backend)
            try:
                BackendEnv.named(model.backend).ensure(reporter)
            except LipsyncError as err:
                failed_envs[model.backend] = err
        err = failed_envs.get(model.backend)
        # The files depend on the weight options and, for some models, on others (size, preprocess).
        key = (
            model.name,
            json.dumps([job.request.weights, job.request.options], sort_keys=True, default=str),
        )
        if err is None:
            if key not in weights_checked:
                try:
                    resolve_weights(model, job.request, reporter)
                    weights_checked[key] = None
                except LipsyncError as weights_err:
                    weights_checked[key] = weights_err
            err = weights_checked[key]
        if err is None:
            ready.append(job)
        else:
            recorder(error_record(job, err, recorder.fingerprints.get(job.id)))
    return ready


def run_batch(options: BatchOptions, reporter: Reporter, sink: RecordSink) -> Summary:
    """Run a batch; every record goes to ``sink`` and the results file.

    Ctrl-C (or SIGTERM, which the CLI turns into one) stops the workers, records the jobs in progress as
    ``interrupted`` and returns with ``summary.interrupted`` set.
    """
    started = time.perf_counter()
    summary = Summary()
    if options.ray is not None:
        from .ray_runner import import_ray

        import_ray(options.ray)  # fail before any work when Ray is missing
    lines, base_dir = read_manifest(options.manifest)
    entries = [e for e in parse_manifest(lines, base_dir, options.defaults) if options.shard.owns(e)]
    entries = check_inputs(entries)
    if options.check_only:
        recorder = _Recorder(None, sink, reporter, summary)
        for entry in entries:
            if isinstance(entry, LineError):
                recorder(line_error_record(entry))
        summary.pending = sum(isinstance(e, Job) for e in entries)
        return summary
    previous = load_results(options.results) if options.resume and options.results else {}
    log = ResultsLog(options.results, append=options.resume) if options.results else None
    recorder = _Recorder(log, sink, reporter, summary, options.scorer)

    def handle(outcome: Outcome) -> None:
        summary.pending -= 1
        recorder.outcome(outcome)

    client = None
    if options.server is not None and options.ray is None:
        from ..serve.remote import connect

        client = connect(options.server, reporter)  # None (rendering here) when no server answers
    try:
        to_render = _triage(entries, previous, recorder)
        if options.ray is None and client is None:
            to_render = _prepare_local(to_render, reporter, recorder)
        groups = group_by_backend(to_render)
        summary.pending = len(to_render)
        if to_render:
            counts = ", ".join(f"{backend} {len(jobs)}" for backend, jobs in groups.items())
            reporter.info(f"rendering {len(to_render)} job(s): {counts}")
        if client is not None:
            from ..serve.remote_batch import run_remote

            run_remote(client, to_render, handle)
        elif options.ray is not None:
            from .ray_runner import run_ray

            run_ray(options.ray, groups, options.device, options.workers, handle, summary.worker_starts)
        elif groups:
            slots = worker_slots(options.device, options.workers)
            run_local(groups, slots, handle, summary.worker_starts)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.wall_seconds = time.perf_counter() - started
        if client is not None:
            client.close()
        if log is not None:
            log.close()
    return summary
