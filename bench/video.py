"""Dubbing a video portrait: the official Wav2Lip ``inference.py`` (run for real) against ``lipsync run``.

    uv run python bench/video.py --official ~/src/Wav2Lip --official-python ~/venvs/w2l/bin/python
        [--clip 1080p:60 --clip 480p:600] [--rounds 1] [--device cpu|cuda] [--detect] [--json FILE]

Each ``--clip HEIGHTp:SECONDS`` is a talking video made for the bench (the astronaut portrait drifting
slowly over a 16:9 grey frame at 25 fps, H.264) with as many seconds of speech. Each round renders it
three ways, interleaved: the official ``inference.py`` (a fresh process; it reads every frame into a
list first), ``lipsync run`` cold (a fresh process) and a warm worker (models loaded by an untimed first
render). Every path reports its wall time and its peak resident memory: the official process's and
the lipsync worker's own (``peak_rss_mb``; the warm worker's is its lifetime peak, the largest clip
included). The lipsync stages come from its ``--json`` (``decode_wait`` is time the model waited for
frames; paste + encode run beside the model). Both sides use the same face box (``--box``;
``--detect`` runs S3FD on both, released weights only), the same weights (released when the store has
them, else stand-ins: the same arithmetic), the official hard paste (``--paste exact``) and the same
ffmpeg. The first 50 frames of both outputs are compared. Prints Markdown for README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import (
    Series,
    load_average,
    machine_line,
    portrait,
    print_setup,
    print_table,
    python_versions,
    speech_clip,
    speed_table,
)
from _official import apply_patches, checkout_commit, official_env, patch_lines, place
from lipsync_kit.probe import ffmpeg_exe
from wav2lip import DETECTOR_PATH, PATCHES, _weights

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.worker import WorkerClient

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEECH = REPO_ROOT / "tests" / "data" / "speech" / "lips_check.wav"
FPS = 25
COMPARED_FRAMES = 50
BOX_512 = (50, 200, 170, 285)  # top, bottom, left, right: the astronaut's face in the 512 px portrait
STAGES = ("load_inputs", "features", "model_load", "detection", "inference", "decode_wait", "paste_encode")


@dataclass(frozen=True)
class Clip:
    height: int
    seconds: float

    @property
    def width(self) -> int:
        return (self.height * 16 // 9) // 2 * 2

    @property
    def face_side(self) -> int:
        return self.height * 3 // 5

    @property
    def label(self) -> str:
        return f"{self.height}p, {self.seconds:g} s"

    @classmethod
    def parse(cls, text: str) -> Clip:
        height, _, seconds = text.partition(":")
        return cls(int(height.rstrip("p")), float(seconds))


def talking_video(work: Path, clip: Clip) -> tuple[Path, tuple[int, int, int, int]]:
    """The bench video and its face box (a plain name: the official code splits the path at its first dot)."""
    side = clip.face_side
    face = portrait(work, side)
    out = work / f"talk{clip.height}x{int(clip.seconds)}.mp4"
    x0, y0 = (clip.width - side) // 2, (clip.height - side) // 2
    drift = max(2, side // 40)  # a slow sway, so frames differ; the fixed box still holds the face
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=0x5a5a5a:s={clip.width}x{clip.height}:r={FPS}:d={clip.seconds}",
         "-loop", "1", "-i", str(face),
         "-filter_complex", f"[0][1]overlay=x='{x0}+{drift}*sin(t)':y={y0}:shortest=1",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    scale = side / 512
    top, bottom, left, right = (round(v * scale) for v in BOX_512)
    margin = drift + 1
    return out, (y0 + top, y0 + bottom, x0 + left - margin, x0 + right + margin)


def run_measured(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> tuple[float, float]:
    """Run a command; return its wall seconds and its peak resident memory in MiB (from ``wait4``)."""
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{argv[1]} failed ({proc.returncode}); log {log}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def first_frames(path: Path, count: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", str(count), "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8)


def frame_difference(a: Path, b: Path) -> str:
    first, second = first_frames(a, COMPARED_FRAMES), first_frames(b, COMPARED_FRAMES)
    if len(first) != len(second):
        return f"first {COMPARED_FRAMES} frames differ in size ({len(first)} and {len(second)} bytes)"
    diff = np.abs(first.astype(np.int16) - second.astype(np.int16))
    return (
        f"first {COMPARED_FRAMES} frames: max {int(diff.max())}, mean {float(diff.mean()):.3f} (8-bit levels)"
    )


@dataclass
class Sides:
    """The three paths of one bench, and how to run each on a clip."""

    args: argparse.Namespace
    checkout: Path
    work: Path
    weights: dict[str, Path]
    env_official: dict[str, str]
    worker: WorkerClient

    def official(self, video: Path, audio: Path, box_args: list[str], out: Path) -> tuple[float, float]:
        argv = [str(self.args.official_python), str(self.checkout / "inference.py"),
                "--checkpoint_path", str(self.weights["checkpoint"]), "--face", str(video),
                "--audio", str(audio), "--outfile", str(out), *box_args]  # fmt: skip
        return run_measured(argv, self.work / "official", self.env_official, out.with_suffix(".log"))

    def cold(self, video: Path, audio: Path, box_args: list[str], out: Path) -> tuple[float, dict]:
        argv = [sys.executable, "-m", "lipsync_cli", "run", "--model", "wav2lip", "--image", str(video),
                "--audio", str(audio), "-o", str(out), "--paste", "exact", "--device", self.args.device,
                "--checkpoint", str(self.weights["checkpoint"]),
                "--detector-checkpoint", str(self.weights["detector"]), *box_args,
                "--json", "--overwrite"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"lipsync run failed:\n{done.stderr[-3000:]}")
        return wall, json.loads(done.stdout)

    def bench(
        self, clip: Clip, video: Path, box: tuple[int, int, int, int], audio: Path
    ) -> dict[str, object]:
        """Run the rounds on one clip, print its tables, return its figures."""
        detect = self.args.detect
        box_args = [] if detect else ["--box", *map(str, box)]
        params = {
            "face": str(video), "audio": str(audio), "format": "mp4", "paste": "exact", "overwrite": True,
            "weights": {role: str(path) for role, path in self.weights.items()},
            "box": None if detect else list(box), "cache_dir": str(self.work / "cache"),
        }  # fmt: skip
        self.worker.render(
            {**params, "output": str(self.work / "warm_first.mp4")}
        )  # loads the models: untimed
        paths = {n: Series(n) for n in ("official inference.py", "lipsync run (cold)", "warm worker")}
        peaks: dict[str, list[float]] = {name: [] for name in paths}
        stages: dict[str, list[dict[str, float]]] = {"lipsync run (cold)": [], "warm worker": []}
        for index in range(self.args.rounds):
            out = self.work / f"official_{clip.height}_{index}.mp4"
            wall, peak = self.official(video, audio, box_args, out)
            paths["official inference.py"].walls.append(wall)
            peaks["official inference.py"].append(peak)

            cold_out = self.work / f"cold_{clip.height}_{index}.mp4"
            wall, result = self.cold(video, audio, box_args, cold_out)
            paths["lipsync run (cold)"].walls.append(wall)
            peaks["lipsync run (cold)"].append(result["peak_rss_mb"])
            stages["lipsync run (cold)"].append(result["seconds"])

            started = time.perf_counter()
            stats = self.worker.render({**params, "output": str(self.work / f"warm_{index}.mp4")}).stats
            paths["warm worker"].walls.append(time.perf_counter() - started)
            peaks["warm worker"].append(stats["peak_rss_mb"])
            stages["warm worker"].append(stats["seconds"])
            done = ", ".join(f"{s.name} {s.walls[-1]:.1f} s" for s in paths.values())
            print(f"{clip.label} round {index + 1}: {done}", file=sys.stderr)

        print(f"\n### Wav2Lip dubbing {clip.label} ({result['frames']} frames), {self.args.device}")
        print_setup({"frames, official against lipsync run": frame_difference(out, cold_out)})
        speed_table(list(paths.values()), paths["official inference.py"])
        print_table(
            "peak resident memory, MiB (max over rounds)",
            ["path", "peak RSS"],
            [[name, max(values)] for name, values in peaks.items()],
        )
        last = {name: runs[-1] for name, runs in stages.items()}
        print_table(
            "lipsync stages, s (last round)",
            ["stage", *last],
            [[stage, *(run.get(stage, 0.0) for run in last.values())] for stage in STAGES],
        )
        return {"walls": {s.name: s.walls for s in paths.values()}, "peaks": peaks, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of Rudrabha/Wav2Lip")
    parser.add_argument("--official-python", type=Path, required=True, help="a Python that runs it")
    parser.add_argument("--clip", type=Clip.parse, action="append", help="HEIGHTp:SECONDS (repeatable)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--audio", type=Path, default=DEFAULT_SPEECH, help="speech, looped to each clip's length"
    )
    parser.add_argument("--detect", action="store_true", help="S3FD on both sides instead of --box")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    clips: list[Clip] = args.clip or [Clip(1080, 60), Clip(480, 600)]
    checkout = args.official.resolve()
    if not (checkout / "inference.py").is_file():
        sys.exit(f"{checkout} has no inference.py: pass a checkout of Rudrabha/Wav2Lip")
    apply_patches(checkout, PATCHES)

    env = BackendEnv.named("wav2lip")
    python = env.ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync_bench_video_"))
    weights, weights_kind = _weights(python, work)
    if args.detect:
        place(checkout / DETECTOR_PATH, weights["detector"])
    official_cwd = work / "official"  # the official code writes temp/result.avi under its working folder
    (official_cwd / "temp").mkdir(parents=True)
    env_official = official_env(work, args.device)
    figures: dict[str, object] = {}
    load_before = load_average()

    with WorkerClient(env, device=args.device) as worker:
        worker.start()
        for clip in clips:
            video, box = talking_video(work, clip)
            sides = Sides(args, checkout, work, weights, env_official, worker)
            figures[clip.label] = sides.bench(clip, video, box, speech_clip(work, clip.seconds, args.audio))
    load_after = load_average()
    print_setup(
        {
            "machine": machine_line(args.device),
            "load averages (1/5/15 min) before / after": f"{load_before} → {load_after}",
            "weights": weights_kind,
            "official": f"{checkout} ({checkout_commit(checkout)}), patches: {patch_lines(PATCHES)}",
            "official Python": python_versions(args.official_python, ("torch", "numpy", "cv2", "librosa")),
            "lipsync backend Python": python_versions(python, ("torch", "numpy", "cv2")),
        }
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
