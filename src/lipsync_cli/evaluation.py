"""Lip-sync scores of videos (``lipsync eval``, ``run --eval``): the SyncNet backend on a warm worker.

The host checks the inputs, builds the syncnet env, finds the weights and sends one request per video;
the worker returns LSE-D, LSE-C, the offset and its curve, the share of frames with a tracked face and
the confidence per second (see ``backends/syncnet``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalogue import SYNCNET_DETECTOR, SYNCNET_FILE, weight_file
from .envs import BackendEnv
from .errors import ErrorCode, LipsyncError
from .output import Reporter
from .render import EventHandler, StageProgress
from .weights import WeightsStore, resolve_custom, sha256_file
from .worker import WorkerClient

__all__ = [
    "BatchScorer",
    "EvalRequest",
    "Evaluator",
    "evaluate",
    "evaluate_record",
    "render_box",
    "resolve_eval_weights",
]

BACKEND = "syncnet"


@dataclass(frozen=True)
class EvalRequest:
    """One video to score; ``audio`` replaces the video's own sound track."""

    video: Path
    audio: Path | None = None
    sheet: Path | None = None
    overwrite: bool = False
    checkpoint: Path | None = None  # a user's syncnet_v2.model
    detector_checkpoint: Path | None = None  # sfd_face.pth or s3fd-619a316812.pth
    box: tuple[float, float, float, float] | None = None
    min_track: int | None = None
    vshift: int = 15

    def check(self) -> None:
        """Inputs exist and are readable; the sheet's folder exists (before any env or worker starts)."""
        for path, code, what in (
            (self.video, ErrorCode.BAD_INPUT, "video"),
            (self.audio, ErrorCode.BAD_AUDIO, "audio"),
        ):
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise LipsyncError(code, f"the {what} file {path} does not exist or is not readable")
        if self.sheet is not None:
            if self.sheet.exists() and not self.overwrite:
                raise LipsyncError(
                    ErrorCode.OUTPUT_EXISTS, f"{self.sheet} exists", "pass --overwrite to replace it"
                )
            if not self.sheet.parent.is_dir():
                raise LipsyncError(
                    ErrorCode.OUTPUT_UNWRITABLE, f"the folder {self.sheet.parent} does not exist"
                )


def resolve_eval_weights(request: EvalRequest, reporter: Reporter) -> dict[str, dict[str, str]]:
    """role -> {path, sha256} for the SyncNet file and (without a fixed box) the face detector.

    syncnet_v2.model has no published size or sha256: it is taken from ``--checkpoint`` or from the weights
    folder and reported with its actual sha256 and ``"verified": false``.
    """
    store = WeightsStore()
    resolved: dict[str, dict[str, str]] = {}
    if request.checkpoint is not None:
        resolved["syncnet"] = {"path": str(resolve_custom(request.checkpoint)), "sha256": "custom"}
    else:
        stored = store.root / SYNCNET_FILE.name
        if not stored.is_file():
            raise LipsyncError(
                ErrorCode.WEIGHTS_MISSING,
                f"{SYNCNET_FILE.name} is not in {store.root}; its size and sha256 are not published, "
                "so lipsync does not download it unverified",
                hint=f"download {SYNCNET_FILE.urls[0]} and put it there, or pass --checkpoint PATH",
            )
        resolved["syncnet"] = {"path": str(stored), "sha256": sha256_file(stored), "verified": "false"}
    if request.box is None:
        if request.detector_checkpoint is not None:
            path = resolve_custom(request.detector_checkpoint)
            resolved["detector"] = {"path": str(path), "sha256": "custom"}
        else:
            wf = weight_file(SYNCNET_DETECTOR)
            resolved["detector"] = {"path": str(store.ensure(wf, reporter)), "sha256": wf.sha256}
    return resolved


class Evaluator:
    """A warm SyncNet worker scoring one video after another (the env must be built)."""

    def __init__(
        self, reporter: Reporter, *, device: str = "auto", env_vars: dict[str, str] | None = None
    ) -> None:
        self.env = BackendEnv.named(BACKEND)
        self.reporter = reporter
        self.device = device
        self.env_vars = env_vars
        self.worker: WorkerClient | None = None

    def evaluate(self, request: EvalRequest, on_event: EventHandler | None = None) -> dict[str, Any]:
        """Score one video; returns its record (``lipsync eval --json``). Failures raise LipsyncError."""
        request.check()
        weights = resolve_eval_weights(request, self.reporter)
        if self.worker is None or not self.worker.alive:
            self.close()
            self.worker = WorkerClient(self.env, device=self.device, env_vars=self.env_vars)
            self.worker.start()
        params = {
            "video": str(request.video.absolute()),
            "audio": str(request.audio.absolute()) if request.audio else None,
            "sheet": str(request.sheet.absolute()) if request.sheet else None,
            "overwrite": request.overwrite,
            "box": list(request.box) if request.box else None,
            "min_track": request.min_track,
            "vshift": request.vshift,
            "weights": {role: entry["path"] for role, entry in weights.items()},
        }
        try:
            result = self.worker.render(params, on_event)
        except LipsyncError as err:
            if err.code == ErrorCode.WORKER_CRASHED:
                self.close()
            raise
        assert self.worker.ready is not None
        return {
            "ok": True,
            "video": str(request.video),
            "audio": str(request.audio) if request.audio else None,
            "sheet": result.output,
            **result.stats,
            "metric": "syncnet",
            "backend_version": self.worker.ready.version,
            "device": self.worker.ready.device,
            "weights": weights,
        }

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()  # a shutdown request to a live worker; only cleanup for a dead one
            self.worker = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate(
    requests: list[EvalRequest], reporter: Reporter, *, device: str = "auto"
) -> list[dict[str, Any]]:
    """Score every video on one worker; a failure stops the run (LipsyncError)."""
    started = time.perf_counter()
    for request in requests:
        request.check()
    BackendEnv.named(BACKEND).ensure(reporter)
    progress = StageProgress(reporter)
    records = []
    try:
        with Evaluator(reporter, device=device) as evaluator:
            for request in requests:
                records.append(evaluator.evaluate(request, progress))
                progress.close()
    finally:
        progress.close()
    for record in records:
        record.setdefault("seconds", {})["host_total"] = round(time.perf_counter() - started, 4)
    return records


def render_box(record: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """The face box of a Wav2Lip result (the mouth is redrawn there) as (x1, y1, x2, y2), else None."""
    box = record.get("face_box")
    if isinstance(box, dict) and {"top", "bottom", "left", "right"} <= box.keys():
        return (float(box["left"]), float(box["top"]), float(box["right"]), float(box["bottom"]))
    return None


def scores_of(record: dict[str, Any]) -> dict[str, Any]:
    """The part of an eval record that goes into a render result."""
    keys = ("lse_d", "lse_c", "offset_frames", "offset_ms", "face_share", "per_second", "weights")
    return {key: record[key] for key in keys}


def evaluate_record(record: dict[str, Any], reporter: Reporter, *, device: str = "auto") -> dict[str, Any]:
    """Scores of a rendered output (``run --eval``): in the face box the render used, if it reports one."""
    request = EvalRequest(video=Path(record["output"]), box=render_box(record))
    return scores_of(evaluate([request], reporter, device=device)[0])


class BatchScorer:
    """``batch --eval``: scores each rendered job on one warm SyncNet worker, shared by the render threads.

    A job whose LSE-C is below ``min_lse_c`` becomes ``low_sync`` (its output is kept). A job whose
    scoring fails keeps its status and gets ``eval.error``.
    """

    def __init__(self, reporter: Reporter, *, device: str = "auto", min_lse_c: float | None = None) -> None:
        self.reporter = reporter
        self.min_lse_c = min_lse_c
        self._evaluator = Evaluator(reporter, device=device)
        self._lock = threading.Lock()
        self._env_ready = False

    def __call__(self, record: dict[str, Any], rendered: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                if not self._env_ready:
                    BackendEnv.named(BACKEND).ensure(self.reporter)
                    self._env_ready = True
                request = EvalRequest(video=Path(record["output"]), box=render_box(rendered))
                scores = scores_of(self._evaluator.evaluate(request))
            except LipsyncError as err:
                return {
                    **record,
                    "eval": {"error": {"code": err.code, "message": err.message, "hint": err.hint}},
                }
        low = self.min_lse_c is not None and scores["lse_c"] < self.min_lse_c
        return {**record, "status": "low_sync" if low else record["status"], "eval": scores}

    def close(self) -> None:
        with self._lock:
            self._evaluator.close()
