"""MuseTalk 1.5 speed: the official ``scripts/inference.py`` (a checkout, run for real) against lipsync.

    uv run python bench/musetalk.py --official ~/src/MuseTalk --official-python ~/venvs/muse/bin/python
        [--device cpu|cuda] [--size 512] [--seconds 10] [--video] [--rounds 3] [--audio SPEECH]

Each round renders the same clip three ways, one after the other: the official normal-mode inference
(``python -m scripts.inference --version v15``, a fresh process from the checkout's root, as its README
runs it), ``lipsync run`` cold (a fresh process: env check, worker start, model loads, render) and a warm
worker (what ``lipsync batch`` keeps between clips). The portrait is the astronaut (``--size`` px), or with
``--video`` a video of it of the speech's length (25 fps, the face drifting a few px per frame, so every
frame is a distinct source frame). Both sides load the same weight files: the released ones if
``lipsync weights status musetalk`` finds them, else stand-ins with the official shapes and layouts (the
same arithmetic), linked where the official code looks for them. The official environment needs mmpose
without compiled mmcv: ``PATCHES`` adds the stub ``mmcv._ext`` module that the research notes describe
(mmdet imports mmcv ops at import time; pose inference calls none). With stand-in weights the official
S3FD's best box on the astronaut lies below the picture and the official code fails on its empty crop, so
by default the official run gets lipsync's face box through its own ``--use_saved_coord`` pickle and skips
its landmark and detection pass (``--official-detect`` keeps it: needs the released weights); lipsync
always detects. Prints Markdown for README.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    Series,
    cpu_model,
    load_average,
    machine_line,
    portrait,
    print_setup,
    print_table,
    python_versions,
    run_json,
    speech_clip,
    speed_table,
)
from _official import Patch, apply_patches, checkout_commit, official_env, patch_lines, place, run_timed

from lipsync_cli.catalogue import MODELS, weight_file
from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.weights import WeightsStore
from lipsync_cli.worker import WorkerClient

TESTS = Path(__file__).resolve().parents[1] / "tests"
PATCHES = (
    Patch(
        "musetalk/utils/preprocessing.py",
        "from mmpose.apis import inference_topdown, init_model",
        "import types as _types, importlib.machinery as _machinery  # lipsync bench: stub mmcv._ext\n"
        "_ext = _types.ModuleType('mmcv._ext'); _ext.__spec__ = _machinery.ModuleSpec('mmcv._ext', None)\n"
        "_ext.__getattr__ = lambda name: (_ for _ in ()).throw(AttributeError(name)) if name.startswith('__')"
        " else (lambda *a, **k: (_ for _ in ()).throw(RuntimeError('mmcv op ' + name)))\n"
        "sys.modules.setdefault('mmcv._ext', _ext)\n"
        "from mmpose.apis import init_model, inference_topdown",  # reordered: the patch applies once
        "mmcv has no compiled wheels for current Python/torch; DWPose inference calls none of its ops",
    ),
)
# role -> where the official code reads it, relative to the checkout
OFFICIAL_PATHS = {
    "unet": "models/musetalkV15/unet.pth",
    "unet_config": "models/musetalkV15/musetalk.json",
    "vae": "models/sd-vae/diffusion_pytorch_model.safetensors",
    "vae_config": "models/sd-vae/config.json",
    "whisper": "models/whisper/model.safetensors",
    "whisper_config": "models/whisper/config.json",
    "whisper_preprocessor": "models/whisper/preprocessor_config.json",
    "pose": "models/dwpose/dw-ll_ucoco_384.pth",
    "parser": "models/face-parse-bisent/79999_iter.pth",
    "detector": "musetalk/utils/face_detection/detection/sfd/s3fd.pth",
}
# The official BiSeNet first loads torchvision's ResNet-18 into its backbone, then 79999_iter.pth overwrites
# every one of those values: a file with the backbone's keys cut from the parser weights does the same.
RESNET18_PATH = "models/face-parse-bisent/resnet18-5c106cde.pth"
RESNET18_FROM_PARSER = (
    "import sys, torch; s = torch.load(sys.argv[1], weights_only=True); "
    "torch.save({k[len('cp.resnet.'):]: v for k, v in s.items() if k.startswith('cp.resnet.')}, sys.argv[2])"
)
STAGES = ("worker_start", "model_load", "load_inputs", "features", "detection", "prepare", "render", "encode")


def _weights(python: Path, folder: Path) -> tuple[dict[str, Path], str]:
    store = WeightsStore()
    roles = MODELS["musetalk"].roles
    real = {role.role: weight_file(role.choices[0]) for role in roles}
    if all(store.status(wf) == "ok" for wf in real.values()):
        return {role: store.path_for(wf) for role, wf in real.items()}, "the released files"
    env = {**os.environ, "PYTHONPATH": str(TESTS / "backends")}
    scripts = TESTS / "backends"
    for argv in (
        [scripts / "musetalk" / "make_musetalk_standins.py", folder, TESTS / "data" / "musetalk"],
        [scripts / "make_standin_checkpoints.py", folder, TESTS / "data" / "wav2lip"],
    ):
        subprocess.run([str(python), *map(str, argv)], check=True, env=env)
    names = {
        "unet": "unet_standin.pth",
        "unet_config": "musetalk.json",
        "vae": "vae_standin.safetensors",
        "vae_config": "vae_config.json",
        "whisper": "whisper_standin.safetensors",
        "whisper_config": "whisper_config.json",
        "whisper_preprocessor": "whisper_preprocessor_config.json",
        "pose": "dwpose_standin.pth",
        "parser": "bisenet_standin.pth",
        "detector": "s3fd_standin.pth",
    }
    return {role: folder / name for role, name in names.items()}, "stand-ins with the official shapes"


def _video(folder: Path, image: Path, seconds: float) -> Path:
    """A 25 fps video of ``image`` drifting right by 1 px per frame for ``seconds``."""
    from lipsync_kit.probe import ffmpeg_exe

    out = folder / "portrait.mp4"
    crop = "crop=iw-32:ih:min(n\\,31):0,pad=iw+32:ih:16:0"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-loop", "1", "-i", str(image), "-t", str(seconds), "-r", "25",
         "-vf", crop, "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def _flags(weights: dict[str, Path]) -> list[str]:
    option = {role.role: role.option for role in MODELS["musetalk"].roles}
    return [
        item for role, path in weights.items() for item in ("--" + option[role].replace("_", "-"), str(path))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of TMElyralab/MuseTalk")
    parser.add_argument("--official-python", type=Path, required=True, help="a Python that runs it")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", type=int, default=512, help="portrait width and height (astronaut)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--video", action="store_true", help="a video portrait instead of a still")
    parser.add_argument("--audio", type=Path, help="speech to use (default: espeak-ng speech)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each path once per round)")
    parser.add_argument("--batch-size", type=int, default=8, help="UNet/VAE batch on both sides")
    parser.add_argument("--official-detect", action="store_true", help="official landmarks + S3FD too")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    checkout = args.official.resolve()
    if not (checkout / "scripts" / "inference.py").is_file():
        sys.exit(f"{checkout} has no scripts/inference.py: pass a checkout of TMElyralab/MuseTalk")
    apply_patches(checkout, PATCHES)

    env = BackendEnv.named("musetalk")
    python = env.ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync_bench_"))
    face = portrait(work, args.size)
    audio = speech_clip(work, args.seconds, args.audio)
    if args.video:
        face = _video(work, face, args.seconds)
    weights, weights_kind = _weights(python, work / "weights")
    for role, relative in OFFICIAL_PATHS.items():
        place(checkout / relative, weights[role])
    resnet18 = work / "weights" / "resnet18_from_parser.pth"
    subprocess.run(
        [str(python), "-c", RESNET18_FROM_PARSER, str(weights["parser"]), str(resnet18)], check=True
    )
    place(checkout / RESNET18_PATH, resnet18)
    env_official = official_env(work, args.device)

    def official(index: int) -> float:
        config = work / f"official_{index}.yaml"
        config.write_text(f"task_0:\n  video_path: {face}\n  audio_path: {audio}\n")
        saved = ["--use_saved_coord", "--saved_coord"] if not args.official_detect else []
        argv = [str(args.official_python), "-m", "scripts.inference", "--inference_config", str(config),
                *saved, "--result_dir", str(work / "official"), "--unet_model_path", OFFICIAL_PATHS["unet"],
                "--unet_config", OFFICIAL_PATHS["unet_config"], "--version", "v15",
                "--batch_size", str(args.batch_size), "--fps", "25",
                "--output_vid_name", f"official_{index}.mp4"]  # fmt: skip
        wall = run_timed(argv, checkout, env_official, work / f"official_{index}.log")
        # The official script catches every error and exits 0: only its output file tells success.
        if not (work / "official" / "v15" / f"official_{index}.mp4").is_file():
            sys.exit(f"the official code wrote no video; log {work / f'official_{index}.log'}")
        return wall

    def cold(out: Path) -> tuple[dict, float]:
        argv = [sys.executable, "-m", "lipsync_cli", "run", "--model", "musetalk", "--image", str(face),
                "--audio", str(audio), "-o", str(out), "--device", args.device, "--batch-size",
                str(args.batch_size), *_flags(weights), "--json", "--overwrite"]  # fmt: skip
        return run_json(argv)

    params = {
        "face": str(face),
        "audio": str(audio),
        "format": "mp4",
        "overwrite": True,
        "batch_size": args.batch_size,
        "weights": {role: str(path) for role, path in weights.items()},
    }
    paths = {name: Series(name) for name in ("official inference.py", "lipsync run (cold)", "warm worker")}
    cold_stages: list[dict[str, float]] = []
    warm_stages: list[dict[str, float]] = []
    load_before = load_average()
    with WorkerClient(env, device=args.device) as worker:
        worker.start()
        first = worker.render({**params, "output": str(work / "warm_first.mp4")}).stats  # loads the models
        box = first["face_box"]
        source_frames = round(args.seconds * 25) if args.video else 1
        coords = [(box["left"], box["top"], box["right"], box["bottom"])] * source_frames
        # The official reads saved boxes from {result_dir}/../{input name}.pkl.
        (work / f"{face.stem}.pkl").write_bytes(pickle.dumps(coords))
        for index in range(args.rounds):
            paths["official inference.py"].walls.append(official(index))
            result, wall = cold(work / f"cold_{index}.mp4")
            paths["lipsync run (cold)"].walls.append(wall)
            cold_stages.append(result["seconds"])
            started = time.perf_counter()
            stats = worker.render({**params, "output": str(work / f"warm_{index}.mp4")}).stats
            paths["warm worker"].walls.append(time.perf_counter() - started)
            warm_stages.append(stats["seconds"])
            print(f"round {index + 1}: " + ", ".join(f"{s.name} {s.walls[-1]:.2f} s" for s in paths.values()),
                  file=sys.stderr)  # fmt: skip
    load_after = load_average()

    kind = "video" if args.video else "still"
    print(
        f"\n## MuseTalk 1.5, {args.seconds:g} s of speech ({result['frames']} frames),"
        f" {args.size}x{args.size} {kind} portrait, batch {args.batch_size}, {args.device}"
    )
    print_setup(
        {
            "machine": machine_line(args.device),
            "load averages (1/5/15 min) before / after": f"{load_before} → {load_after}",
            "weights": weights_kind,
            "official": f"{checkout} ({checkout_commit(checkout)}), patches: {patch_lines(PATCHES)}",
            "official Python": python_versions(
                args.official_python, ("torch", "diffusers", "transformers", "cv2")
            ),
            "lipsync backend Python": python_versions(python, ("torch", "diffusers", "transformers", "cv2")),
        }
    )
    speed_table(
        list(paths.values()), paths["official inference.py"], unit=result["frames"], unit_name="frame"
    )
    print_table(
        "lipsync stages, median s",
        ["stage", "lipsync run (cold)", "warm worker"],
        [[stage, _median(cold_stages, stage), _median(warm_stages, stage)] for stage in STAGES],
    )
    if args.json:
        figures = {
            "paths": {s.name: s.walls for s in paths.values()},
            "cold_stages": cold_stages,
            "warm_stages": warm_stages,
            "frames": result["frames"],
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load": [load_before, load_after]},
        }
        args.json.write_text(json.dumps(figures, indent=1))


def _median(stages: list[dict[str, float]], stage: str) -> float:
    return statistics.median(s.get(stage, 0.0) for s in stages)


if __name__ == "__main__":
    main()
