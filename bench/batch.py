"""Batch speed: N short clips through ``lipsync batch`` (warm workers) against N separate ``lipsync run``.

    uv run python bench/batch.py [--clips 20] [--seconds 2] [--device cpu] [--workers 1]

Both paths render the same clips (a 256x256 portrait, ``--seconds`` of espeak-ng speech each, Wav2Lip)
on this machine in this run, with the real CLI in fresh processes. "Rendering" is what the workers
report for the jobs themselves (reading inputs, features, face detection, inference, encoding);
everything else, host start, checks, env check, worker start and the model load, is "outside".
Weights: stand-ins with the official shapes (same arithmetic as the real files, so the same speed).
Prints Markdown tables for README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA_DIR, machine_line, print_table, speech_clip, standin_wav2lip_weights

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter

PORTRAIT = DATA_DIR / "astronaut_256.jpg"
JOB_STAGES = ("load_inputs", "features", "detection", "inference", "encode")  # model_load is outside


def _rendering(timings: dict[str, float]) -> float:
    return sum(timings.get(stage, 0.0) for stage in JOB_STAGES)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "LIPSYNC_HOME": str(home), "LIPSYNC_OFFLINE": "1"}


def _separate_runs(clips: list[Path], out: Path, weights: dict[str, Path], device: str, env: dict) -> dict:
    walls, rendering = [], 0.0
    for clip in clips:
        argv = [
            sys.executable, "-m", "lipsync_cli", "run", "-m", "wav2lip", "-i", str(PORTRAIT), "-a", str(clip),
            "-o", str(out / f"{clip.stem}.mp4"), "--device", device, "--json", "-y",
            "--checkpoint", str(weights["checkpoint"]), "--detector-checkpoint", str(weights["detector"]),
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"lipsync run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        rendering += _rendering(json.loads(done.stdout)["seconds"])
    return {"wall": sum(walls), "rendering": rendering, "worker_starts": len(clips)}


def _batch(
    clips: list[Path], out: Path, weights: dict[str, Path], args: argparse.Namespace, env: dict
) -> dict:
    manifest = out / "jobs.jsonl"
    manifest.write_text(
        "".join(
            json.dumps(
                {"id": clip.stem, "image": str(PORTRAIT), "audio": str(clip), "output": f"{clip.stem}.mp4"}
            )
            + "\n"
            for clip in clips
        )
    )
    argv = [
        sys.executable, "-m", "lipsync_cli", "batch", str(manifest), "-m", "wav2lip", "--device", args.device,
        "--json", "--overwrite", "-O", f"checkpoint={weights['checkpoint']}",
        "-O", f"detector_checkpoint={weights['detector']}",
    ]  # fmt: skip
    if args.workers:
        argv += ["--workers", str(args.workers)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"lipsync batch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    jobs, summary = records[:-1], records[-1]
    if any(job["status"] != "ok" for job in jobs):
        sys.exit(f"a batch job failed: {[j for j in jobs if j['status'] != 'ok']}")
    first = jobs[0]["timings"]
    return {
        "wall": wall,
        "rendering": sum(_rendering(job["timings"]) for job in jobs),
        "worker_starts": sum(summary["worker_starts"].values()),
        "worker_start_s": first.get("worker_start", 0.0),
        "model_load_s": first.get("model_load", 0.0),
        "host_s": wall - summary["wall_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, help="batch workers (default: the batch's own default)")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()

    python = BackendEnv.named("wav2lip").ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync-bench-batch-"))
    try:
        weights = standin_wav2lip_weights(python, work)
        speech = speech_clip(work, args.seconds)
        clips = []
        for i in range(args.clips):
            clip = work / f"clip-{i:03d}.wav"
            shutil.copyfile(speech, clip)
            clips.append(clip)
        env = _env(work / "home")
        warm = work / "warm"
        warm.mkdir()
        _separate_runs(clips[:1], warm, weights, args.device, env)  # page cache, bytecode: not measured
        separate_dir, batch_dir = work / "separate", work / "batch"
        separate_dir.mkdir()
        batch_dir.mkdir()
        batch = _batch(clips, batch_dir, weights, args, env)
        separate = _separate_runs(clips, separate_dir, weights, args.device, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name, figures in (("batch (warm workers)", batch), (f"{args.clips} x lipsync run", separate)):
        outside = figures["wall"] - figures["rendering"]
        rows.append(
            [
                name,
                figures["worker_starts"],
                figures["wall"],
                figures["wall"] / args.clips,
                figures["rendering"],
                outside,
                f"{100 * outside / figures['wall']:.1f} %",
            ]
        )
    print(f"{args.clips} clips of {args.seconds:g} s, 256x256 portrait, Wav2Lip, {machine_line(args.device)}")
    print_table(
        "Batch against separate runs",
        ["path", "worker starts", "wall s", "s per clip", "rendering s", "outside s", "outside"],
        rows,
    )
    ratio = separate["wall"] / batch["wall"]
    print(f"\nbatch is {ratio:.2f}x faster than {args.clips} separate runs")
    print(
        f"batch outside rendering: worker start {batch['worker_start_s']:.1f} s, "
        f"model load {batch['model_load_s']:.1f} s, host process {batch['host_s']:.1f} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"batch": batch, "separate": separate, "ratio": ratio}, indent=1))


if __name__ == "__main__":
    main()
