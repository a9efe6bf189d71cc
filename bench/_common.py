"""Shared pieces of the bench scripts: inputs, stand-in weights, timing and tables (no torch here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from lipsync_kit.probe import ffmpeg_exe, probe

from lipsync_cli.envs import BackendEnv
from lipsync_cli.worker import WorkerClient

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
PORTRAIT_512 = DATA_DIR / "astronaut_512.jpg"
SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog while the astronaut reads the checklist aloud. "
    "Every clip in this benchmark is the same ten seconds of synthetic speech, repeated if needed. "
)


class Stopwatch:
    """Named wall-clock laps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def lap(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def speech_clip(folder: Path, seconds: float, audio: Path | None = None) -> Path:
    """A speech WAV of exactly ``seconds``: the given file cut to length, or espeak-ng speech looped."""
    out = folder / f"speech_{seconds:g}s.wav"
    if audio is None:
        if shutil.which("espeak-ng") is None:
            sys.exit("espeak-ng is not installed: pass --audio SPEECH.wav")
        audio = folder / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(audio), SPEECH_TEXT], check=True)
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(audio),
            "-t",
            f"{seconds}",
            "-ac",
            "1",
            "-ar",
            "16000",
            str(out),
        ],
        check=True,
    )
    return out


def duration(path: Path) -> float:
    info = probe(path)
    if info.duration is None:
        raise RuntimeError(f"cannot read the duration of {path}")
    return info.duration


def standin_wav2lip_weights(python: Path, folder: Path) -> dict[str, Path]:
    """Stand-in Wav2Lip + S3FD checkpoints (official formats; same compute as the real files)."""
    subprocess.run(
        [
            str(python),
            str(REPO_ROOT / "tests" / "backends" / "make_standin_checkpoints.py"),
            str(folder),
            str(DATA_DIR / "wav2lip"),
        ],
        check=True,
    )
    return {"checkpoint": folder / "wav2lip_standin.pth", "detector": folder / "s3fd_standin.pth"}


def run_json(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    """Run a command that prints one JSON object on stdout; return it and the wall-clock seconds."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A GitHub-flavoured Markdown table, so the output pastes into README as is."""
    cells = [[_cell(v) for v in row] for row in rows]
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in cells:
        print("| " + " | ".join(row) + " |")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def machine_line(device: str) -> str:
    cpu = os.cpu_count()
    return f"{sys.platform}, {cpu} CPU cores, device {device}"


def worker_renders(env: BackendEnv, device: str, params: dict, runs: int) -> tuple[float, list[dict]]:
    """Worker start seconds, and the stats (+ ``wall``) of ``runs`` renders on that one warm worker."""
    started = time.perf_counter()
    with WorkerClient(env, device=device) as worker:
        worker.start()
        start_s = time.perf_counter() - started
        results = []
        for _ in range(runs):
            mark = time.perf_counter()
            result = worker.render({**params, "overwrite": True})
            results.append({**result.stats, "wall": time.perf_counter() - mark})
    return start_s, results


@dataclass(frozen=True)
class Comparison:
    """One clip rendered three ways on one machine: cold CLI, warm worker, official flow."""

    cold: dict
    cold_wall: float
    worker_start: float
    warm_runs: list[dict]
    official: dict
    official_wall: float

    @property
    def warm(self) -> dict:
        """The fastest render after the first on the warm worker (the first one loads the models)."""
        return min(self.warm_runs[1:] or self.warm_runs, key=lambda r: r["wall"])

    def save(self, path: Path | None, **extra: object) -> None:
        if path is not None:
            path.write_text(json.dumps({**asdict(self), **extra}, indent=1))


def compare(
    env: BackendEnv,
    device: str,
    cli_args: Sequence[str],
    params: dict,
    official: Sequence[str],
    repeat: int,
) -> Comparison:
    """Render with ``lipsync run`` (new process), on a warm worker (``repeat`` times) and with the
    official-flow script ``official`` (argv after the backend's python), in that order."""
    cold, cold_wall = run_json(
        [sys.executable, "-m", "lipsync_cli", "run", *cli_args, "--device", device, "--json", "--overwrite"]
    )
    start_s, warm_runs = worker_renders(env, device, params, repeat)
    official_result, official_wall = run_json(
        [str(env.python), *official, "--device", device], env={**os.environ, **env.process_env()}
    )
    return Comparison(cold, cold_wall, start_s, warm_runs, official_result, official_wall)
