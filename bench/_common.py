"""Shared pieces of the bench scripts: inputs, stand-in weights, timing series, machine facts, tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lipsync_kit.probe import ffmpeg_exe, probe

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
PORTRAIT_512 = DATA_DIR / "astronaut_512.jpg"  # scikit-image's astronaut
SPEECH_TEXT = (
    "The quick brown fox jumps over the lazy dog while the astronaut reads the checklist aloud. "
    "Every clip in this benchmark is the same ten seconds of synthetic speech, repeated if needed. "
)


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def speech_clip(folder: Path, seconds: float, audio: Path | None = None) -> Path:
    """A 16 kHz mono WAV of exactly ``seconds``: the given file cut to length, or espeak-ng speech looped."""
    out = folder / f"speech_{seconds:g}s.wav"
    if audio is None:
        if shutil.which("espeak-ng") is None:
            sys.exit("espeak-ng is not installed: pass --audio SPEECH.wav")
        audio = folder / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(audio), SPEECH_TEXT], check=True)
    _ffmpeg("-stream_loop", "-1", "-i", str(audio), "-t", f"{seconds}", "-ac", "1", "-ar", "16000", str(out))
    return out


def portrait(folder: Path, size: int) -> Path:
    """The astronaut portrait at ``size`` x ``size`` (Lanczos from 512), as ``face.png`` in ``folder``.

    A plain name: the official Wav2Lip tells images from videos by ``path.split('.')[1]``."""
    out = folder / "face.png"
    _ffmpeg("-i", str(PORTRAIT_512), "-vf", f"scale={size}:{size}:flags=lanczos", str(out))
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


def run_json(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[dict, float]:
    """Run a command that prints one JSON object on stdout; return it and the wall-clock seconds."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


@dataclass
class Series:
    """Wall-clock seconds of one path over the interleaved rounds."""

    name: str
    walls: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def spread(self) -> str:
        return f"{_cell(min(self.walls))}–{_cell(max(self.walls))}"


OFFICIAL, COLD, WARM = "official inference.py", "lipsync run (cold)", "warm worker"


@dataclass
class Rounds:
    """What the interleaved rounds measured: walls per path, lipsync's seconds per stage, machine load."""

    paths: dict[str, Series]
    cold_stages: list[dict[str, float]]
    warm_stages: list[dict[str, float]]
    last_result: dict
    load_before: str
    load_after: str

    def stage_rows(self, stages: Sequence[str]) -> list[list[object]]:
        """Median seconds per stage, cold and warm, for the stages either path reported."""
        present = [s for s in stages if any(s in seen for seen in self.cold_stages + self.warm_stages)]
        return [[s, _median_stage(self.cold_stages, s), _median_stage(self.warm_stages, s)] for s in present]

    def figures(self) -> dict[str, object]:
        """The raw numbers for ``--json``."""
        return {
            "paths": {s.name: s.walls for s in self.paths.values()},
            "cold_stages": self.cold_stages,
            "warm_stages": self.warm_stages,
            "machine": {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "load": [self.load_before, self.load_after],
            },
        }


def interleaved_rounds(
    rounds: int,
    official: Callable[[int], float],
    cold: Callable[[int], tuple[dict, float]],
    warm: Callable[[int], dict],
) -> Rounds:
    """Run the official code, a cold ``lipsync run`` and a warm worker render in turn, ``rounds`` times.

    Interleaving spreads any drift of the machine's load over every path alike. ``official`` returns its
    wall seconds, ``cold`` the ``--json`` result and wall seconds, ``warm`` the worker's result stats.
    """
    paths = {name: Series(name) for name in (OFFICIAL, COLD, WARM)}
    cold_stages: list[dict[str, float]] = []
    warm_stages: list[dict[str, float]] = []
    result: dict = {}
    load_before = load_average()
    for index in range(rounds):
        paths[OFFICIAL].walls.append(official(index))
        result, wall = cold(index)
        paths[COLD].walls.append(wall)
        cold_stages.append(result["seconds"])
        started = time.perf_counter()
        stats = warm(index)
        paths[WARM].walls.append(time.perf_counter() - started)
        warm_stages.append(stats["seconds"])
        walls = ", ".join(f"{s.name} {s.walls[-1]:.2f} s" for s in paths.values())
        print(f"round {index + 1}: {walls}", file=sys.stderr)
    return Rounds(paths, cold_stages, warm_stages, result, load_before, load_average())


def _median_stage(stages: list[dict[str, float]], stage: str) -> float:
    return statistics.median(s.get(stage, 0.0) for s in stages)


def speed_table(paths: Sequence[Series], baseline: Series, unit: float = 0.0, unit_name: str = "") -> None:
    """Median, spread and the ratio baseline-median / path-median (``> 1``: faster than the baseline).

    With ``unit`` (frames per clip), a column of median seconds per ``unit_name`` is added."""
    header = ["path", "runs", "median s", "min–max s", f"{baseline.name} / path"]
    if unit:
        header.append(f"median s per {unit_name}")
    rows = []
    for series in paths:
        row: list[object] = [
            series.name,
            len(series.walls),
            series.median,
            series.spread,
            f"{baseline.median / series.median:.2f}×",
        ]
        if unit:
            row.append(series.median / unit)
        rows.append(row)
    print_table("wall clock, interleaved rounds", header, rows)


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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_line(device: str) -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, device {device}"


def python_versions(python: Path, modules: Sequence[str]) -> str:
    """``module version`` pairs as imported by ``python`` (another environment's interpreter)."""
    code = (
        "import importlib, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    print(name, getattr(importlib.import_module(name), '__version__', '?'))\n"
        "print('python', sys.version.split()[0])\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return ", ".join(done.stdout.split("\n")[i] for i in range(len(modules) + 1))


def print_setup(lines: Mapping[str, str]) -> None:
    """The facts a figure depends on, one ``- key: value`` line each (Markdown list)."""
    print()
    for key, value in lines.items():
        print(f"- {key}: {value}")
