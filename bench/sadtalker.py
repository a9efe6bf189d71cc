"""SadTalker speed: the official ``inference.py`` (a checkout, run for real) against ``lipsync run``.

    uv run python bench/sadtalker.py --official ~/src/SadTalker --official-python ~/venvs/sadtalker/bin/python
        [--device cpu|cuda] [--seconds S] [--rounds 2] [--preprocess crop|full] [--audio SPEECH]

Each round renders the same clip three ways, one after the other: the official ``inference.py`` (a fresh
process, as its README runs it; ``--still`` in full mode), ``lipsync run`` cold (a fresh process) and a
warm worker (what ``lipsync batch`` keeps between clips); interleaving spreads the machine's background
load over all paths alike. Inputs: the 512x512 astronaut portrait, speech (espeak-ng, or ``--audio``), the
256 renderer; full mode pastes back with Poisson blending, as the official code does. Weights: the real
files when ``lipsync weights status sadtalker`` has them, else stand-ins with the official shapes (the
same arithmetic). The official checkout gets only the patches of ``PATCHES``. The head motion and blinks
are random in both (ours: ``--seed 0``), so the frames are not compared. On a CPU the renderer needs
about 10 s per frame, so the default clip there is 1 s (the official blink sampler needs at least 22
frames). Prints Markdown for README, with seconds per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    COLD,
    DATA_DIR,
    OFFICIAL,
    PORTRAIT_512,
    REPO_ROOT,
    WARM,
    duration,
    interleaved_rounds,
    machine_line,
    print_setup,
    print_table,
    python_versions,
    run_json,
    speech_clip,
    speed_table,
)
from _official import Patch, apply_patches, checkout_commit, official_env, patch_lines, place, run_timed

from lipsync_cli.catalogue import weight_file
from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.weights import WeightsStore
from lipsync_cli.worker import WorkerClient

_TWO_DECIMALS = "NumPy 2 no longer turns 1-element arrays into scalars"
PATCHES = (
    Patch(
        "inference.py",
        "from src.utils.preprocess import CropAndExtract",
        "import torchvision.transforms.functional as _tf\n"
        'sys.modules.setdefault("torchvision.transforms.functional_tensor", _tf)\n'
        "from src.utils.preprocess import CropAndExtract",
        "torchvision 0.17 removed `transforms.functional_tensor`, which basicsr (imported by gfpgan) still "
        "imports: alias it to `transforms.functional`",
    ),
    Patch(
        "src/face3d/util/preprocess.py",
        "category=np.VisibleDeprecationWarning",
        "category=np.exceptions.VisibleDeprecationWarning",
        "NumPy 2 moved `VisibleDeprecationWarning` to `np.exceptions`",
    ),
    Patch(
        "src/face3d/util/my_awing_arch.py",
        "preds.astype(np.float, copy=False)",
        "preds.astype(float, copy=False)",
        "NumPy 1.24 removed the `np.float` alias",
    ),
    Patch(
        "src/face3d/util/preprocess.py",
        "    sTx = k[3]\n    sTy = k[7]",
        "    sTx = k[3, 0]\n    sTy = k[7, 0]",
        f"{_TWO_DECIMALS} (`float(...)`, and `np.array` of the translation)",
    ),
    Patch(
        "src/utils/preprocess.py",
        "[float(item) for item in np.hsplit(trans_params, 5)]",
        "[float(item[0]) for item in np.hsplit(trans_params, 5)]",
        _TWO_DECIMALS,
    ),
    Patch(
        "src/face3d/extract_kp_videos_safe.py",
        "                except TypeError:",
        "                except (TypeError, IndexError):",
        "for the stand-in weights: their detector finds no face on the 256 px crop, and an empty detection "
        "raises IndexError, not the TypeError of the official 'No face detected' branch (the standard "
        "face; lipsync falls back the same way)",
    ),
)
WEIGHTS_DIR = "gfpgan/weights"  # facexlib's files, relative to the official code's working folder
STAGES = ("worker_start", "model_load", "load_inputs", "crop_3dmm", "audio_to_coeffs", "render", "paste")
STAGES += ("encode",)
_DETECTOR_FOR_RGB = """
import sys
import cv2, torch
from make_face_standins import ASTRONAUT, detector_standin, finding_detector
# The official code hands RetinaFace its RGB array (lipsync converts to BGR first): tune the finding
# head on the channel order the official code feeds, so that it finds the same face.
state = finding_detector(detector_standin(), cv2.imread(str(ASTRONAUT)))
torch.save({f"module.{k}": v for k, v in state.items()}, sys.argv[1])
"""


def _weights(python: Path, folder: Path, full: bool) -> tuple[dict[str, Path], Path, str]:
    """lipsync's weights, the official detector file (the same unless stand-ins), and their kind."""
    store = WeightsStore()
    real = {
        "bundle": weight_file("SadTalker_V0.0.2_256.safetensors"),
        "mapping": weight_file("mapping_00109-model.pth.tar" if full else "mapping_00229-model.pth.tar"),
        "detector": weight_file("detection_Resnet50_Final.pth"),
        "landmarks": weight_file("alignment_WFLW_4HG.pth"),
    }
    if all(store.status(wf) == "ok" for wf in real.values()):
        paths = {role: store.path_for(wf) for role, wf in real.items()}
        return paths, paths["detector"], "the released files"
    tests = REPO_ROOT / "tests" / "backends" / "sadtalker"
    backends = REPO_ROOT / "backends"
    pythonpath = [backends / "common", backends / "sadtalker", tests.parent, tests]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    for argv in (
        ["make_sadtalker_standins.py", folder, DATA_DIR / "sadtalker"],
        ["make_face_standins.py", folder],
    ):
        subprocess.run([str(python), str(tests / argv[0]), *map(str, argv[1:])], check=True, env=env)
    official_detector = folder / "detection_Resnet50_astronaut_rgb.pth"
    subprocess.run([str(python), "-c", _DETECTOR_FOR_RGB, str(official_detector)], check=True, env=env)
    paths = {
        "bundle": folder / "SadTalker_standin.safetensors",
        "mapping": folder / ("mapping_full_standin.pth.tar" if full else "mapping_crop_standin.pth.tar"),
        "detector": folder / "detection_Resnet50_astronaut.pth",
        "landmarks": folder / "alignment_WFLW_4HG_mean_shape.pth",
    }
    return paths, official_detector, "stand-ins with the official shapes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of OpenTalker/SadTalker")
    parser.add_argument("--official-python", type=Path, required=True, help="a Python that runs it")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seconds", type=float, help="clip length (default: 1 on the CPU, 10 on a GPU)")
    parser.add_argument("--preprocess", default="crop", choices=("crop", "full"))
    parser.add_argument("--audio", type=Path, help="speech to use (default: espeak-ng speech)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each path once per round)")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.device == "cpu" else 10.0)
    full = args.preprocess == "full"
    model = "sadtalker-still" if full else "sadtalker"
    checkout = args.official.resolve()
    if not (checkout / "inference.py").is_file():
        sys.exit(f"{checkout} has no inference.py: pass a checkout of OpenTalker/SadTalker")
    apply_patches(checkout, PATCHES)

    env = BackendEnv.named("sadtalker")
    python = env.ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync_bench_"))
    face = work / "face.jpg"
    face.write_bytes(PORTRAIT_512.read_bytes())  # the file the stand-in detectors were tuned on
    audio = speech_clip(work, seconds, args.audio)
    weights, official_detector, weights_kind = _weights(python, work, full)

    official_cwd = work / "official"  # facexlib's weights are looked up under the working folder
    place(official_cwd / WEIGHTS_DIR / "detection_Resnet50_Final.pth", official_detector)
    place(official_cwd / WEIGHTS_DIR / "alignment_WFLW_4HG.pth", weights["landmarks"])
    checkpoints = work / "checkpoints"
    place(checkpoints / "SadTalker_V0.0.2_256.safetensors", weights["bundle"])
    place(checkpoints / f"mapping_{'00109' if full else '00229'}-model.pth.tar", weights["mapping"])
    env_official = official_env(work, args.device)
    mode = ["--preprocess", args.preprocess, *(["--still"] if full else [])]
    cpu = ["--cpu"] if args.device == "cpu" else []

    def official(index: int) -> float:
        results = work / f"official_{index}"
        argv = [str(args.official_python), str(checkout / "inference.py"), "--driven_audio", str(audio),
                "--source_image", str(face), "--checkpoint_dir", str(checkpoints),
                "--result_dir", str(results), "--size", "256", *mode, *cpu]  # fmt: skip
        return run_timed(argv, official_cwd, env_official, work / f"official_{index}.log")

    weight_args = ["--checkpoint", str(weights["bundle"]), "--mapping-checkpoint", str(weights["mapping"]),
                   "--detector-checkpoint", str(weights["detector"]),
                   "--landmark-checkpoint", str(weights["landmarks"])]  # fmt: skip
    paste = ["--paste", "poisson"] if full else []  # the official paste-back

    def cold(index: int) -> tuple[dict, float]:
        return run_json([sys.executable, "-m", "lipsync_cli", "run", "--model", model, "--image", str(face),
                         "--audio", str(audio), "-o", str(work / f"cold_{index}.mp4"), "--seed", "0",
                         "--preprocess", args.preprocess, *weight_args, *paste, "--device", args.device,
                         "--json", "--overwrite"])  # fmt: skip

    params = {
        "face": str(face),
        "audio": str(audio),
        "format": "mp4",
        "overwrite": True,
        "seed": 0,
        "preprocess": args.preprocess,
        "still": full,
        "paste": "poisson" if full else "blend",
        "weights": {role: str(path) for role, path in weights.items()},
    }
    with WorkerClient(env, device=args.device) as worker:
        worker.start()
        short = speech_clip(work, 0.4, audio)
        worker.render({**params, "audio": str(short), "output": str(work / "warm_first.mp4")})  # loads models
        rounds = interleaved_rounds(
            args.rounds,
            official,
            cold,
            lambda index: worker.render({**params, "output": str(work / f"warm_{index}.mp4")}).stats,
        )
    result = rounds.last_result

    frames = result["frames"]
    official_video = next((work / "official_0").glob("*.mp4"))
    print(
        f"\n## SadTalker ({model}, --preprocess {args.preprocess}), {seconds:g} s of speech "
        f"({frames} frames), 512x512 portrait, 256 renderer, {args.device}"
    )
    print_setup(
        {
            "machine": machine_line(args.device),
            "load averages (1/5/15 min) before / after": f"{rounds.load_before} → {rounds.load_after}",
            "weights": weights_kind,
            "official": f"{checkout} ({checkout_commit(checkout)}), patches: {patch_lines(PATCHES)}",
            "official Python": python_versions(args.official_python, ("torch", "torchvision", "numpy")),
            "lipsync backend Python": python_versions(python, ("torch", "numpy", "cv2")),
            "output s, official / lipsync": f"{duration(official_video):.2f} / {frames / 25:.2f}",
        }
    )
    speed_table(list(rounds.paths.values()), rounds.paths[OFFICIAL], unit=frames, unit_name="frame")
    print_table("lipsync stages, median s", ["stage", COLD, WARM], rounds.stage_rows(STAGES))
    if args.json:
        args.json.write_text(json.dumps({**rounds.figures(), "frames": frames}, indent=1))


if __name__ == "__main__":
    main()
