"""SadTalker speed: seconds per stage against the official flow, for a 10 s clip (CPU: a few frames, scaled).

    uv run python bench/sadtalker.py [--device cpu|cuda] [--seconds S] [--preprocess crop|full] [--audio A]

Measured in one run on one machine, on the 512x512 astronaut portrait:
* ``lipsync run`` cold: the real CLI in a fresh process;
* a warm worker: the same render again on a worker with its models loaded;
* the official ``inference.py`` flow (bench/official_sadtalker.py) on the same inputs and device.
Weights: the real files when ``lipsync weights status sadtalker`` has them, else stand-ins with the
official shapes (the same arithmetic). On the CPU the default clip is 0.4 s (10 frames); the per-frame
stages are then scaled to 10 s in the last table. Prints Markdown tables for README.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from _common import (
    DATA_DIR,
    PORTRAIT_512,
    REPO_ROOT,
    Stopwatch,
    compare,
    duration,
    machine_line,
    print_table,
    speech_clip,
)

from lipsync_cli.catalogue import weight_file
from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.weights import WeightsStore

FIXED = ("load_inputs", "model_load", "crop_3dmm")  # once per clip
PER_FRAME = ("audio_to_coeffs", "render", "paste", "enhance", "encode")  # grow with the clip
TARGET_S = 10.0


def _weights(python: Path, folder: Path, size: int, full: bool) -> tuple[dict[str, Path], str]:
    store = WeightsStore()
    real = {
        "bundle": weight_file(f"SadTalker_V0.0.2_{size}.safetensors"),
        "mapping": weight_file("mapping_00109-model.pth.tar" if full else "mapping_00229-model.pth.tar"),
        "detector": weight_file("detection_Resnet50_Final.pth"),
        "landmarks": weight_file("alignment_WFLW_4HG.pth"),
    }
    if all(store.status(wf) == "ok" for wf in real.values()):
        return {role: store.path_for(wf) for role, wf in real.items()}, "official"
    tests = REPO_ROOT / "tests" / "backends" / "sadtalker"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [
                str(REPO_ROOT / "backends" / "common"),
                str(REPO_ROOT / "backends" / "sadtalker"),
                str(REPO_ROOT / "tests" / "backends"),
            ]
        ),
    }
    subprocess.run(
        [str(python), str(tests / "make_sadtalker_standins.py"), str(folder), str(DATA_DIR / "sadtalker")],
        check=True,
        env=env,
    )
    subprocess.run([str(python), str(tests / "make_face_standins.py"), str(folder)], check=True, env=env)
    return {
        "bundle": folder / "SadTalker_standin.safetensors",
        "mapping": folder / ("mapping_full_standin.pth.tar" if full else "mapping_crop_standin.pth.tar"),
        "detector": folder / "detection_Resnet50_astronaut.pth",
        "landmarks": folder / "alignment_WFLW_4HG_mean_shape.pth",
    }, "stand-in (official shapes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, help="clip length (default: 10 on a GPU, 0.4 on the CPU)")
    parser.add_argument("--preprocess", default="crop", choices=("crop", "full"))
    parser.add_argument("--audio", type=Path, help="speech to use (default: espeak-ng speech)")
    parser.add_argument("--repeat", type=int, default=2, help="renders on the warm worker")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    seconds = args.seconds or (0.4 if args.device == "cpu" else TARGET_S)
    full = args.preprocess == "full"
    model = "sadtalker-still" if full else "sadtalker"

    env = BackendEnv.named("sadtalker")
    watch = Stopwatch()
    with watch.lap("env_check"):
        python = env.ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync-bench-"))
    audio = speech_clip(work, seconds, args.audio)
    weights, weights_kind = _weights(python, work, 256, full)
    clip_s = duration(audio)

    weight_args = [
        "--checkpoint",
        str(weights["bundle"]),
        "--mapping-checkpoint",
        str(weights["mapping"]),
        "--detector-checkpoint",
        str(weights["detector"]),
        "--landmark-checkpoint",
        str(weights["landmarks"]),
    ]
    paste = "poisson"  # the official paste-back, for identical output in full mode
    result = compare(
        env,
        args.device,
        ["--model", model, "--image", str(PORTRAIT_512), "--audio", str(audio), "-o", str(work / "cold.mp4"),
         "--seed", "0", "--preprocess", args.preprocess, *weight_args, *(["--paste", paste] if full else [])],
        {"face": str(PORTRAIT_512), "audio": str(audio), "output": str(work / "warm.mp4"), "format": "mp4",
         "seed": 0, "preprocess": args.preprocess, "still": full, "paste": paste,
         "weights": {role: str(path) for role, path in weights.items()}},
        [str(REPO_ROOT / "bench" / "official_sadtalker.py"), "--face", str(PORTRAIT_512),
         "--audio", str(audio), "--bundle", str(weights["bundle"]), "--mapping", str(weights["mapping"]),
         "--detector", str(weights["detector"]), "--landmarks", str(weights["landmarks"]),
         "--preprocess", args.preprocess, "--out", str(work / "official.mp4")],
        args.repeat,
    )  # fmt: skip
    cold, cold_wall, warm = result.cold, result.cold_wall, result.warm
    official, official_wall, start_s = result.official, result.official_wall, result.worker_start

    frames = cold["frames"]
    columns = {
        "official flow": official["seconds"],
        "lipsync run (cold)": cold["seconds"],
        "warm worker": warm["seconds"],
    }
    stages = [s for s in (*FIXED, *PER_FRAME) if any(s in c for c in columns.values())]
    rows = [[stage, *(c.get(stage, 0.0) for c in columns.values())] for stage in stages]
    walls = [official_wall, cold_wall, warm["wall"]]
    rows.append(["**wall clock**", *walls])
    print(
        f"\nSadTalker ({model}, --preprocess {args.preprocess}), {frames} frames ({clip_s:.2f} s of audio), "
        f"512x512 portrait, 256 renderer, {weights_kind} weights; {machine_line(cold['device'])}; "
        f"worker start on its own: {start_s:.2f} s"
    )
    print_table("seconds per stage", ["stage", *columns], rows)

    scale = TARGET_S * 25 / frames
    # Only the stages that grow with the clip are scaled; everything else in the wall clock stays.
    projected = [
        wall + (scale - 1) * sum(c.get(s, 0.0) for s in PER_FRAME)
        for c, wall in zip(columns.values(), walls, strict=True)
    ]
    print_table(
        f"a {TARGET_S:g} s clip ({'measured' if scale == 1 else f'per-frame stages scaled x{scale:.1f}'})",
        ["path", "wall s", "x official", "realtime factor"],
        [
            [name, wall, projected[0] / wall, TARGET_S / wall]
            for name, wall in zip(columns, projected, strict=True)
        ],
    )
    result.save(args.json, clip_s=clip_s, weights=weights_kind)


if __name__ == "__main__":
    main()
