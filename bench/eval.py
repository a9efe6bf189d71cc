"""Benchmark ``lipsync eval`` against the official joonson/syncnet_python scripts on one machine.

    uv run python bench/eval.py --official /path/to/syncnet_python --official-python /venv/bin/python \
        [--seconds 60] [--size 1280x720] [--device cpu]

Makes a talking-portrait clip (the 512 px astronaut on a 720p canvas, drifting a few pixels, with looped
espeak-ng speech), then scores it three ways: ``lipsync eval`` in a fresh process (cold), the same
request on a warm worker, and the official ``run_pipeline.py`` + ``run_syncnet.py`` (a Python that has
torch, opencv, scipy, python_speech_features and scenedetect 0.5.1). Prints Markdown tables of wall
times and of the per-track scores of both, plus lipsync's SyncNet path on the official pipeline's own
crop videos (bench/_score_crops.py): equal numbers there show the network, MFCC and offset search agree
on identical inputs, so any remaining difference comes from the official lossy re-encodes.

Weights: the checkout's own ``data/syncnet_v2.model`` and ``detectors/s3fd/weights/sfd_face.pth`` when
present (real weights); otherwise stand-ins of the official shapes are written there first, with the
detector's class heads scaled by ``--detector-gain`` so that it finds one (large) face in the clip; both
flows then load the same files. The official scripts hard-code CUDA; on a machine without it they run
through a small shim (``.cuda()`` is the identity, S3FD runs on the CPU) and the two numpy/OpenCV shims
the goldens needed (tests/data/syncnet/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import PORTRAIT_512, REPO_ROOT, machine_line, print_table, run_json, speech_clip
from lipsync_kit.probe import ffmpeg_exe

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.worker import WorkerClient

FPS = 25
OFFICIAL_SHIM = """
import runpy, sys
import cv2, numpy as np, torch
np.int = int
torch.nn.Module.cuda = lambda self, *a, **k: self
torch.Tensor.cuda = lambda self, *a, **k: self
if not torch.cuda.is_available():
    import detectors
    original = detectors.S3FD.__init__
    detectors.S3FD.__init__ = lambda self, device="cpu": original(self, device="cpu")
    import scenedetect.detectors.content_detector as content
    class _Cv2:
        def __getattr__(self, name):
            return getattr(cv2, name)
        def split(self, image):
            return list(cv2.split(image))
    content.cv2 = _Cv2()
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""
SCORES = re.compile(r"AV offset:\s*(-?\d+)\s*\nMin dist:\s*([\d.]+)\s*\nConfidence:\s*([-\d.]+)")


def make_clip(folder: Path, seconds: float, size: tuple[int, int]) -> Path:
    """The portrait drifting on a grey canvas (H.264 + AAC), with looped speech."""
    width, height = size
    side = min(512, height - 40)
    decode = [ffmpeg_exe(), "-v", "error", "-i", str(PORTRAIT_512), "-vf", f"scale={side}:{side}:flags=area"]
    decode += ["-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    raw = subprocess.run(decode, capture_output=True, check=True).stdout
    face = np.frombuffer(raw, dtype=np.uint8).reshape(side, side, 3)
    speech = speech_clip(folder, seconds)
    out = folder / f"clip_{seconds:g}s_{width}x{height}.mp4"
    argv = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{width}x{height}",
    ]
    argv += ["-r", str(FPS), "-i", "pipe:0", "-i", str(speech), "-c:v", "libx264", "-crf", "18", "-preset"]
    argv += ["veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for k in range(round(seconds * FPS)):
        canvas = np.full((height, width, 3), 96, dtype=np.uint8)
        dx, dy = round(3 * np.sin(k / 17)), round(2 * np.cos(k / 23))
        top, left = (height - side) // 2 + dy, (width - side) // 2 + dx
        canvas[top : top + side, left : left + side] = face
        proc.stdin.write(canvas.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("ffmpeg failed to make the clip")
    return out


def weights(checkout: Path, gain: float) -> tuple[Path, Path, str]:
    """The checkout's weight files, written as stand-ins first when absent; and which kind they are."""
    model = checkout / "data" / "syncnet_v2.model"
    detector = checkout / "detectors" / "s3fd" / "weights" / "sfd_face.pth"
    if model.is_file() and detector.is_file():
        return model, detector, "the checkout's own files"
    python = BackendEnv.named("syncnet").ensure(PlainReporter())
    with tempfile.TemporaryDirectory() as tmp:
        script = REPO_ROOT / "tests" / "backends" / "syncnet" / "make_syncnet_standins.py"
        subprocess.run(
            [str(python), str(script), tmp, str(REPO_ROOT / "tests" / "data" / "syncnet")], check=True
        )
        model.parent.mkdir(parents=True, exist_ok=True)
        detector.parent.mkdir(parents=True, exist_ok=True)
        gained = (
            "import sys, torch; s = torch.load(sys.argv[1]); "
            "s = {k: v * float(sys.argv[3]) if k.startswith('conf.') else v for k, v in s.items()}; "
            "torch.save(s, sys.argv[2])"
        )
        subprocess.run(
            [str(python), "-c", gained, f"{tmp}/sfd_face.pth", str(detector), str(gain)], check=True
        )
        model.write_bytes(Path(tmp, "syncnet_v2.model").read_bytes())
    return model, detector, f"stand-ins (detector class heads x{gain:g})"


def run_official(python: str, checkout: Path, clip: Path, work: Path) -> tuple[list[dict], dict[str, float]]:
    """Both official scripts; per-track scores parsed from run_syncnet's output, and the wall times."""
    seconds: dict[str, float] = {}
    output = ""
    bin_dir = work / "bin"  # the official scripts call `ffmpeg` through the shell
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not (bin_dir / "ffmpeg").exists():
        (bin_dir / "ffmpeg").symlink_to(ffmpeg_exe())
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for script in ("run_pipeline.py", "run_syncnet.py"):
        argv = [python, "-c", OFFICIAL_SHIM, script, "--videofile", str(clip), "--reference", "bench"]
        argv += ["--data_dir", str(work)]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=checkout, capture_output=True, text=True, env=env)
        seconds[script] = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        output = done.stdout
    tracks = [
        {"offset_frames": int(o), "lse_d": float(d), "lse_c": float(c)} for o, d, c in SCORES.findall(output)
    ]
    return tracks, seconds


def score_official_crops(model: Path, videos: list[Path]) -> list[dict]:
    """lipsync's SyncNet, MFCC and offset search on the official pipeline's own crop videos."""
    python = BackendEnv.named("syncnet").ensure(PlainReporter())
    script = REPO_ROOT / "bench" / "_score_crops.py"
    done = subprocess.run(
        [str(python), str(script), str(model), *map(str, videos)], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"scoring the official crops failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def _warm_render(env: BackendEnv, device: str, params: dict) -> tuple[float, list[dict]]:
    """Worker start seconds, and the stats (+ ``wall``) of one evaluation on that started worker."""
    started = time.perf_counter()
    with WorkerClient(env, device=device) as worker:
        worker.start()
        start_s = time.perf_counter() - started
        mark = time.perf_counter()
        stats = worker.render({**params, "overwrite": True}).stats
    return start_s, [{**stats, "wall": time.perf_counter() - mark}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="a joonson/syncnet_python checkout")
    parser.add_argument("--official-python", required=True, help="a Python that runs the official scripts")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detector-gain", type=float, default=6.0)
    parser.add_argument("--work", type=Path, help="keep the clip and the official work files here")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = make_clip(work, args.seconds, size)  # type: ignore[arg-type]
        model, detector, kind = weights(args.official.resolve(), args.detector_gain)
        cli = [sys.executable, "-m", "lipsync_cli", "eval", str(clip), "--json", "--device", args.device]
        cli += ["--checkpoint", str(model), "--detector-checkpoint", str(detector)]
        ours, cold_wall = run_json(cli)
        params = {"video": str(clip), "weights": {"syncnet": str(model), "detector": str(detector)}}
        start_s, warm = _warm_render(BackendEnv.named("syncnet"), args.device, params)
        official, official_seconds = run_official(
            args.official_python, args.official.resolve(), clip, work / "off"
        )
        on_crops = score_official_crops(model, sorted((work / "off" / "pycrop" / "bench").glob("0*.avi")))
    official_wall = sum(official_seconds.values())
    print(f"{args.seconds:g} s clip, {args.size}, {kind}; {machine_line(args.device)}")
    print_table(
        "Wall time",
        ["flow", "seconds", "vs official"],
        [
            ["official run_pipeline.py + run_syncnet.py", official_wall, 1.0],
            ["lipsync eval (cold process)", cold_wall, official_wall / cold_wall],
            ["warm worker (lipsync batch --eval)", warm[0]["wall"], official_wall / warm[0]["wall"]],
        ],
    )
    rows = [["official", i, t["lse_d"], t["lse_c"], t["offset_frames"]] for i, t in enumerate(official)]
    rows += [["lipsync", i, t["lse_d"], t["lse_c"], t["offset_frames"]] for i, t in enumerate(ours["tracks"])]
    rows += [
        ["lipsync on the official crops", i, t["lse_d"], t["lse_c"], t["offset_frames"]]
        for i, t in enumerate(on_crops)
    ]
    print_table("Scores per face track", ["flow", "track", "LSE-D", "LSE-C", "offset"], rows)
    print(f"\nworker start {start_s:.1f} s; official stages: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in official_seconds.items()))  # fmt: skip


if __name__ == "__main__":
    main()
