"""``lipsync doctor``: check everything a render depends on."""

from __future__ import annotations

import shutil
import subprocess
import sys

from lipsync_kit.probe import ffmpeg_exe

from .. import paths
from ..catalogue import MODELS, model_weight_files
from ..envs import BackendEnv, find_uv
from ..errors import LipsyncError
from ..output import print_json
from ..weights import WeightsStore
from .options import JsonOpt

_MIN_FREE_GB = 10.0


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _checks() -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = [("python", True, sys.version.split()[0])]
    try:
        uv = find_uv()
        checks.append(("uv", True, f"{_run([str(uv), '--version']).strip()} ({uv})"))
    except LipsyncError as err:
        checks.append(("uv", False, err.message))
    ffmpeg = ffmpeg_exe()
    encoders = _run([ffmpeg, "-hide_banner", "-encoders"])
    missing = [name for name in ("libx264", "aac") if f" {name} " not in encoders]
    detail = f"{ffmpeg}" + (f" (missing encoders: {', '.join(missing)})" if missing else " (libx264, aac)")
    checks.append(("ffmpeg", not missing, detail))
    for label, folder in (("disk (envs)", paths.envs_dir()), ("disk (weights)", paths.home())):
        probe_dir = folder
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        free_gb = shutil.disk_usage(probe_dir).free / 1e9
        checks.append((label, free_gb >= _MIN_FREE_GB, f"{free_gb:.1f} GB free at {folder}"))
    gpus = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]).strip()
    checks.append(("gpu", True, gpus.replace("\n", "; ") if gpus else "no NVIDIA GPU found (CPU rendering)"))
    store = WeightsStore()
    for backend in dict.fromkeys(model.backend for model in MODELS.values()):
        env = BackendEnv.named(backend)
        state = env.status()
        checks.append((f"env {env.name}", state in ("ready", "external"), f"{state} ({env.python})"))
    # The files each model's defaults pick, each listed once.
    defaults = {
        wf.name: wf for model in MODELS.values() for wf in model_weight_files(model, every_checkpoint=False)
    }
    for wf in defaults.values():
        state = store.status(wf)
        checks.append((f"weights {wf.name}", state == "ok", f"{state} ({store.path_for(wf)})"))
    return checks


def doctor(json_: JsonOpt = False) -> None:
    """Check uv, ffmpeg, disk space, GPU, backend environments and weights."""
    checks = _checks()
    if json_:
        print_json("doctor", {"checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks]})
        return
    for name, ok, detail in checks:
        print(f"{'ok ' if ok else '-- '} {name:<44} {detail}")
