"""Wav2Lip speed: seconds per stage for a 10 s clip from a 512x512 portrait, against the official flow.

    uv run python bench/wav2lip.py [--device cpu|cuda] [--seconds 10] [--audio SPEECH] [--repeat 2]

Measured in one run on one machine:
* ``lipsync run`` cold: the real CLI in a fresh process (env check, worker start, model load, render);
* a warm worker: the same render again on a worker that has its models loaded (what ``lipsync batch``
  keeps between clips);
* the official ``inference.py`` flow (bench/official_wav2lip.py) on the same inputs, device and weights.
Weights: the real files if ``lipsync weights status wav2lip`` finds them, else stand-ins with the
official shapes (same arithmetic, so the same speed). Prints Markdown tables for README.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import (
    PORTRAIT_512,
    REPO_ROOT,
    Stopwatch,
    compare,
    duration,
    machine_line,
    print_table,
    speech_clip,
    standin_wav2lip_weights,
)

from lipsync_cli.catalogue import weight_file
from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.weights import WeightsStore

STAGES = ("load_inputs", "features", "model_load", "detection", "inference", "encode")


def _weights(python: Path, folder: Path) -> tuple[dict[str, Path], str]:
    store = WeightsStore()
    real = {"checkpoint": weight_file("wav2lip.pth"), "detector": weight_file("s3fd-619a316812.pth")}
    if all(store.status(wf) == "ok" for wf in real.values()):
        return {role: store.path_for(wf) for role, wf in real.items()}, "official"
    return standin_wav2lip_weights(python, folder), "stand-in (official shapes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--audio", type=Path, help="speech to use (default: espeak-ng speech)")
    parser.add_argument("--repeat", type=int, default=2, help="renders on the warm worker")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()

    reporter = PlainReporter()
    env = BackendEnv.named("wav2lip")
    watch = Stopwatch()
    with watch.lap("env_check"):
        python = env.ensure(reporter)
    work = Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    audio = speech_clip(work, args.seconds, args.audio)
    weights, weights_kind = _weights(python, work)
    clip_s = duration(audio)

    model_files = [
        "--checkpoint",
        str(weights["checkpoint"]),
        "--detector-checkpoint",
        str(weights["detector"]),
    ]
    result = compare(
        env,
        args.device,
        ["--model", "wav2lip", "--image", str(PORTRAIT_512), "--audio", str(audio),
         "-o", str(work / "cold.mp4"), "--paste", "exact", *model_files],
        {"face": str(PORTRAIT_512), "audio": str(audio), "output": str(work / "warm.mp4"), "format": "mp4",
         "paste": "exact", "weights": {role: str(path) for role, path in weights.items()}},
        [str(REPO_ROOT / "bench" / "official_wav2lip.py"), "--face", str(PORTRAIT_512), "--audio", str(audio),
         "--checkpoint", str(weights["checkpoint"]), "--detector", str(weights["detector"]),
         "--out", str(work / "official.mp4")],
        args.repeat,
    )  # fmt: skip
    cold, cold_wall, warm = result.cold, result.cold_wall, result.warm
    official, official_wall, start_s = result.official, result.official_wall, result.worker_start

    frames = cold["frames"]
    cold_s, warm_s, off_s = cold["seconds"], warm["seconds"], official["seconds"]
    rows = [
        [stage, off_s.get(stage, 0.0), cold_s.get(stage, 0.0), warm_s.get(stage, 0.0)] for stage in STAGES
    ]
    rows.insert(0, ["env check", 0.0, watch.seconds["env_check"], 0.0])
    rows.insert(1, ["worker start (python + torch import)", 0.0, cold_s.get("worker_start", 0.0), 0.0])
    warm_render = sum(warm_s.get(stage, 0.0) for stage in STAGES)
    rows.append(["**wall clock**", official_wall, cold_wall, warm["wall"]])
    rows.append(
        [
            "realtime factor (clip s / wall s)",
            clip_s / official_wall,
            clip_s / cold_wall,
            clip_s / warm["wall"],
        ]
    )
    print(
        f"\nWav2Lip, {frames} frames ({clip_s:.2f} s of audio), 512x512 portrait, {weights_kind} weights; "
        f"{machine_line(cold['device'])}; worker start on its own: {start_s:.2f} s"
    )
    print_table("seconds per stage", ["stage", "official flow", "lipsync run (cold)", "warm worker"], rows)
    print_table(
        "throughput relative to the official flow (same run, same device)",
        ["path", "wall s", "x official"],
        [
            ["official flow", official_wall, 1.0],
            ["lipsync run (cold)", cold_wall, official_wall / cold_wall],
            ["warm worker", warm["wall"], official_wall / warm["wall"]],
            ["warm worker, render stages only", warm_render, official_wall / warm_render],
        ],
    )
    result.save(args.json, clip_s=clip_s, weights=weights_kind)


if __name__ == "__main__":
    main()
