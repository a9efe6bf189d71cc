"""``lipsync serve`` speed: ``lipsync run`` standalone against through a running server, API overhead per
job, and the throughput of N clips through the API against ``lipsync batch``.

    uv run python bench/serve.py [--seconds 10] [--runs 3] [--clips 20] [--clip-seconds 2] [--device cpu]

Everything runs on this machine in this run, with the real CLI and a real ``lipsync serve`` in fresh
processes. "Warm worker" is the server job's own time (from the worker's start of the job to its
result); "API overhead" is a job's time in the server (submitted to ended) less what its worker spent.
Weights: stand-ins with the official shapes (the same arithmetic as the real files). Needs the serve
extra (``uv sync --extra serve``). Prints Markdown tables for README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import PORTRAIT_512, machine_line, print_table, run_json, speech_clip, standin_wav2lip_weights

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter

WORKER_STAGES = ("load_inputs", "features", "detection", "inference", "encode", "model_load")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(home: Path, allow: Path, device: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = [
        sys.executable, "-m", "lipsync_cli", "serve", "--port", str(port), "--device", device,
        "--allow-paths", str(allow), "--workers", "1",
    ]  # fmt: skip
    log = open(home / "server.log", "ab")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"lipsync serve exited ({proc.returncode}); see {home / 'server.log'}")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit("lipsync serve did not come up")


def _run_argv(clip: Path, out: Path, weights: dict[str, Path], device: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lipsync_cli", "run", "-m", "wav2lip", "-i", str(PORTRAIT_512), "-a", str(clip),
        "-o", str(out), "--device", device, "--json", "-y", "--paste", "exact",
        "--checkpoint", str(weights["checkpoint"]), "--detector-checkpoint", str(weights["detector"]), *extra,
    ]  # fmt: skip


def _worker_seconds(record: dict) -> float:
    return sum(record["seconds"].get(stage, 0.0) for stage in WORKER_STAGES)


def _api_jobs(url: str, clips: list[Path], weights: dict[str, Path]) -> tuple[float, list[dict]]:
    """Upload every clip at once, wait for all; wall seconds and the final jobs."""
    options = json.dumps(
        {"checkpoint": str(weights["checkpoint"]), "detector_checkpoint": str(weights["detector"])}
    )

    def one(clip: Path) -> dict:
        with httpx.Client(base_url=url, timeout=None) as http:
            with open(PORTRAIT_512, "rb") as image, open(clip, "rb") as audio:
                job = http.post(
                    "/v1/jobs",
                    data={"model": "wav2lip", "options": options},
                    files={"image": ("face.jpg", image), "audio": (clip.name, audio)},
                ).json()
            while (job := http.get(f"/v1/jobs/{job['id']}").json())["status"] in ("queued", "running"):
                time.sleep(0.05)
            if job["status"] != "ok":
                sys.exit(f"an API job failed: {job['error']}")
            http.get(job["output_url"]).raise_for_status()
            return job

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(one, clips))
    return time.perf_counter() - started, jobs


def _batch(clips: list[Path], out: Path, weights: dict[str, Path], device: str, env: dict) -> float:
    manifest = out / "jobs.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"id": c.stem, "image": str(PORTRAIT_512), "audio": str(c), "output": f"{c.stem}.mp4"})
            + "\n"
            for c in clips
        )
    )
    argv = [
        sys.executable, "-m", "lipsync_cli", "batch", str(manifest), "-m", "wav2lip", "--device", device,
        "--workers", "1", "--json", "--overwrite", "-O", f"checkpoint={weights['checkpoint']}",
        "-O", f"detector_checkpoint={weights['detector']}",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"lipsync batch failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the lipsync run clip")
    parser.add_argument("--runs", type=int, default=3, help="runs of each lipsync run path (median)")
    parser.add_argument("--clips", type=int, default=20, help="clips of the throughput comparison")
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()

    python = BackendEnv.named("wav2lip").ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync-bench-serve-"))
    server = None
    try:
        weights = standin_wav2lip_weights(python, work)
        clip = speech_clip(work, args.seconds)
        short = speech_clip(work, args.clip_seconds)
        clips = []
        for i in range(args.clips):
            clips.append(work / f"clip-{i:03d}.wav")
            shutil.copyfile(short, clips[-1])
        home = work / "home"
        home.mkdir()
        env = {**os.environ, "LIPSYNC_HOME": str(home), "LIPSYNC_OFFLINE": "1"}
        env.pop("LIPSYNC_SERVER", None)
        out = work / "out"
        out.mkdir()

        run_json(_run_argv(clip, out / "cache.mp4", weights, args.device), env)  # page cache: not measured
        cold = [
            run_json(_run_argv(clip, out / "cold.mp4", weights, args.device), env)[1]
            for _ in range(args.runs)
        ]

        server, url = _start_server(home, work, args.device, env)
        run_json(_run_argv(clip, out / "first.mp4", weights, args.device, "--server", url), env)  # warm-up
        served, warm_job = [], []
        for _ in range(args.runs):
            record, wall = run_json(
                _run_argv(clip, out / "served.mp4", weights, args.device, "--server", url), env
            )
            served.append(wall)
            warm_job.append(_worker_seconds(record))

        api_wall, jobs = _api_jobs(url, clips, weights)
        overhead = [
            (job["finished"] - job["created"]) - job["queued_seconds"] - _worker_seconds(job["result"])
            for job in jobs
        ]
        server.send_signal(signal.SIGTERM)
        server.wait(120)
        server = None
        batch_dir = work / "batch"
        batch_dir.mkdir()
        batch_wall = _batch(clips, batch_dir, weights, args.device, env)
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    cold_s, served_s, warm_s = (statistics.median(v) for v in (cold, served, warm_job))
    print(f"Wav2Lip, 512x512 portrait, {args.seconds:g} s clip, --paste exact, {machine_line(args.device)}")
    print_table(
        f"lipsync run, {args.seconds:g} s clip (median of {args.runs})",
        ["path", "wall s", "vs standalone", "vs warm worker"],
        [
            ["standalone (cold)", cold_s, "1.00x", f"{cold_s / warm_s:.2f}x"],
            [
                "through lipsync serve",
                served_s,
                f"{cold_s / served_s:.2f}x faster",
                f"{served_s / warm_s:.2f}x",
            ],
            ["warm worker (the server job)", warm_s, f"{cold_s / warm_s:.2f}x faster", "1.00x"],
        ],
    )
    print_table(
        f"{args.clips} clips of {args.clip_seconds:g} s",
        ["path", "wall s", "s per clip"],
        [
            ["API (uploads, 1 warm worker)", api_wall, api_wall / args.clips],
            ["lipsync batch (1 worker)", batch_wall, batch_wall / args.clips],
        ],
    )
    print(
        f"\nAPI overhead per job (time in the server less the worker's): median "
        f"{1000 * statistics.median(overhead):.1f} ms, max {1000 * max(overhead):.1f} ms"
    )
    if args.json:
        figures = {"cold": cold, "served": served, "warm_job": warm_job, "api_wall": api_wall,
                   "batch_wall": batch_wall, "overhead": overhead}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
