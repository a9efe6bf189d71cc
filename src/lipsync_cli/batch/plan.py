"""Which jobs this process renders and on what: manifest shards, groups per backend, worker slots."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Final

from ..catalogue import get_model
from ..errors import ErrorCode, LipsyncError
from .manifest import Job, LineError

__all__ = ["Shard", "WorkerSlot", "cpu_workers", "group_by_backend", "visible_gpus", "worker_slots"]

_SHARD: Final = re.compile(r"(\d+)/(\d+)")
_MAX_CPU_WORKERS: Final = 4
_CORES_PER_CPU_WORKER: Final = 4  # torch spreads one render over the cores already


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): a job belongs to the shard its id hashes to.

    Hashing the id (not the line number) keeps every job in its shard when lines are added, removed or
    reordered, so each array task can ``--resume`` its own results.
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.fullmatch(text.strip())
        if not match:
            raise LipsyncError(ErrorCode.BAD_OPTION, f"--shard takes INDEX/COUNT such as 0/4, got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 0 <= index < count:
            raise LipsyncError(
                ErrorCode.BAD_OPTION, f"--shard {text}: the index must be 0 to {max(count - 1, 0)}"
            )
        return cls(index, count)

    def owns(self, entry: Job | LineError) -> bool:
        if self.count == 1:
            return True
        key = entry.id if entry.id is not None else f"line:{entry.line}"
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


def group_by_backend(jobs: list[Job]) -> dict[str, list[Job]]:
    """Jobs per backend in manifest order; backends in order of first appearance."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(get_model(job.model).backend, []).append(job)
    return groups


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker runs: its ``--device`` and environment variables on top of the backend's."""

    device: str
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        gpu = self.env_vars.get("CUDA_VISIBLE_DEVICES")
        return f"{self.device} (GPU {gpu})" if gpu is not None else self.device


def visible_gpus() -> list[str]:
    """The NVIDIA GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else what nvidia-smi lists."""
    if (value := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()]


def cpu_workers() -> int:
    """The default number of CPU workers per backend: one per few cores, at most a handful."""
    return max(1, min(_MAX_CPU_WORKERS, (os.cpu_count() or 1) // _CORES_PER_CPU_WORKER))


def worker_slots(device: str, workers: int | None) -> list[WorkerSlot]:
    """Slots for the workers of one backend.

    ``auto`` and ``cuda`` with GPUs present: one worker per GPU by default, each seeing only its GPU
    (``CUDA_VISIBLE_DEVICES``); more workers than GPUs share them round-robin. An explicit ``cuda:N``,
    ``mps`` or ``cpu`` puts every worker there. CPU workers split the cores between them.
    """
    if workers is not None and workers < 1:
        raise LipsyncError(ErrorCode.BAD_OPTION, f"--workers must be at least 1, got {workers}")
    spec = device.strip().lower()
    gpus = visible_gpus() if spec in ("auto", "cuda") else []
    if gpus:
        count = workers or len(gpus)
        return [WorkerSlot(device, {"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}) for i in range(count)]
    if spec.startswith(("cuda", "mps")):
        return [WorkerSlot(device) for _ in range(workers or 1)]
    count = workers or cpu_workers()
    env: dict[str, str] = {}
    if count > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // count))
    return [WorkerSlot(device, dict(env)) for _ in range(count)]
