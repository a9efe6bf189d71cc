"""``lipsync doctor``: check everything a render depends on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Literal

import typer
from lipsync_kit.probe import ffmpeg_exe

from .. import paths
from ..catalogue import MODELS, model_weight_files
from ..envs import BackendEnv, find_uv
from ..errors import LipsyncError, Outcome, exit_status
from ..output import emit
from ..weights import WeightsStore
from .options import JsonOpt

_MIN_FREE_GB = 10.0


@dataclass(frozen=True)
class Check:
    """One finding: ``ok``; ``info`` (nothing wrong, e.g. set up on first use); ``fail`` (must be fixed)."""

    name: str
    state: Literal["ok", "info", "fail"]
    detail: str


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _tools() -> list[Check]:
    checks = [Check("python", "ok", sys.version.split()[0])]
    try:
        uv = find_uv()
        checks.append(Check("uv", "ok", f"{_run([str(uv), '--version']).strip()} ({uv})"))
    except LipsyncError as err:
        checks.append(Check("uv", "fail", err.message))
    ffmpeg = ffmpeg_exe()
    encoders = _run([ffmpeg, "-hide_banner", "-encoders"])
    missing = [name for name in ("libx264", "aac") if f" {name} " not in encoders]
    detail = f"{ffmpeg}" + (f" (missing encoders: {', '.join(missing)})" if missing else " (libx264, aac)")
    checks.append(Check("ffmpeg", "fail" if missing else "ok", detail))
    for label, folder in (("disk (envs)", paths.envs_dir()), ("disk (weights)", paths.home())):
        probe_dir = folder
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        free_gb = shutil.disk_usage(probe_dir).free / 1e9
        state = "ok" if free_gb >= _MIN_FREE_GB else "fail"
        checks.append(Check(label, state, f"{free_gb:.1f} GB free at {folder} (needs {_MIN_FREE_GB:g})"))
    gpus = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]).strip()
    checks.append(Check("gpu", "ok", gpus.replace("\n", "; ") if gpus else "no NVIDIA GPU (CPU rendering)"))
    return checks


def _models() -> list[Check]:
    """Envs and default weight files: missing ones are set up on first use; a corrupt file fails."""
    checks = []
    for backend in dict.fromkeys(model.backend for model in MODELS.values()):
        env = BackendEnv.named(backend)
        state = env.status()
        note = {"missing": ", built on first use", "stale": ", rebuilt on next use"}.get(state, "")
        ok = state in ("ready", "external")
        checks.append(Check(f"env {env.name}", "ok" if ok else "info", f"{state}{note} ({env.python})"))
    store = WeightsStore()
    defaults = {
        wf.name: wf for model in MODELS.values() for wf in model_weight_files(model, every_checkpoint=False)
    }
    for wf in defaults.values():
        state = store.status(wf)
        note = ", downloaded on first use" if state == "missing" else ""
        level = "ok" if state == "ok" else "info" if state == "missing" else "fail"
        checks.append(Check(f"weights {wf.name}", level, f"{state}{note} ({store.path_for(wf)})"))
    return checks


def doctor(json_: JsonOpt = False) -> None:
    """Check uv, ffmpeg, disk space, GPU, backend environments and weights (exit 1 if a check fails)."""
    checks = _tools() + _models()
    failed = [check.name for check in checks if check.state == "fail"]
    marks = {"ok": "ok ", "info": " · ", "fail": "-- "}
    emit(
        "doctor",
        {"ok": not failed, "checks": [asdict(check) for check in checks]},
        json_mode=json_,
        lines=[f"{marks[c.state]} {c.name:<44} {c.detail}" for c in checks],
    )
    if failed:
        raise typer.Exit(exit_status(Outcome.CHECKS_FAILED))
