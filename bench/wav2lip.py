"""Wav2Lip speed: the official ``inference.py`` (a checkout, run for real) against ``lipsync run``.

    uv run python bench/wav2lip.py --official ~/src/Wav2Lip --official-python ~/src/Wav2Lip/.venv/bin/python
        [--device cpu|cuda] [--size 512] [--seconds 10] [--rounds 3] [--detect] [--audio SPEECH]

Each round renders the same clip three ways, one after the other: the official ``inference.py``
(a fresh process, as its README runs it), ``lipsync run`` cold (a fresh process: env check, worker
start, model load, render) and a warm worker (what ``lipsync batch`` keeps between clips). Interleaving
the rounds spreads the machine's background load over all paths alike. Both sides use the same face box
(``--box``, so detection is identical and cheap; ``--detect`` runs the S3FD detector instead, which needs
the released weights: the stand-in S3FD's best box on the astronaut is degenerate, and the official code
fails on its empty crop), the same
weights (the real files if ``lipsync weights status wav2lip`` finds them, else stand-ins with the official
shapes: the same arithmetic), the hard paste of the official code (``--paste exact``) and the same ffmpeg.
The official checkout gets only the compatibility patches of ``PATCHES``. Prints Markdown for README,
with the machine, its load before and after, the versions, and how far the frames of both outputs differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import (
    COLD,
    OFFICIAL,
    WARM,
    duration,
    interleaved_rounds,
    machine_line,
    portrait,
    print_setup,
    print_table,
    python_versions,
    run_json,
    speech_clip,
    speed_table,
    standin_wav2lip_weights,
)
from _frames import compare
from _official import Patch, apply_patches, checkout_commit, official_env, patch_lines, place, run_timed

from lipsync_cli.catalogue import weight_file
from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter
from lipsync_cli.weights import WeightsStore
from lipsync_cli.worker import WorkerClient

PATCHES = (
    Patch(
        "audio.py",
        "librosa.filters.mel(hp.sample_rate, hp.n_fft, n_mels=",
        "librosa.filters.mel(sr=hp.sample_rate, n_fft=hp.n_fft, n_mels=",
        "librosa 0.10 takes the mel filter's sample rate and FFT size as keywords only",
    ),
    Patch(
        "face_detection/utils.py",
        "dtype=np.int)",
        "dtype=int)",
        "NumPy 1.24 removed the `np.int` alias",
    ),
)
DETECTOR_PATH = "face_detection/detection/sfd/s3fd.pth"  # where the official S3FD looks for its weights
BOX_512 = (50, 200, 170, 285)  # top, bottom, left, right: the astronaut's face at 512x512
STAGES = ("worker_start", "model_load", "load_inputs", "features", "detection", "inference", "encode")


def _weights(python: Path, folder: Path) -> tuple[dict[str, Path], str]:
    store = WeightsStore()
    real = {"checkpoint": weight_file("wav2lip.pth"), "detector": weight_file("s3fd-619a316812.pth")}
    if all(store.status(wf) == "ok" for wf in real.values()):
        return {role: store.path_for(wf) for role, wf in real.items()}, "the released files"
    return standin_wav2lip_weights(python, folder), "stand-ins with the official shapes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of Rudrabha/Wav2Lip")
    parser.add_argument("--official-python", type=Path, required=True, help="a Python that runs it")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", type=int, default=512, help="portrait width and height (astronaut)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--audio", type=Path, help="speech to use (default: espeak-ng speech)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each path once per round)")
    parser.add_argument("--detect", action="store_true", help="S3FD instead of --box (released weights)")
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    args = parser.parse_args()
    checkout = args.official.resolve()
    if not (checkout / "inference.py").is_file():
        sys.exit(f"{checkout} has no inference.py: pass a checkout of Rudrabha/Wav2Lip")
    apply_patches(checkout, PATCHES)

    env = BackendEnv.named("wav2lip")
    python = env.ensure(PlainReporter())
    work = Path(tempfile.mkdtemp(prefix="lipsync_bench_"))
    face = portrait(work, args.size)
    audio = speech_clip(work, args.seconds, args.audio)
    weights, weights_kind = _weights(python, work)
    if args.detect:
        place(checkout / DETECTOR_PATH, weights["detector"])
    box = tuple(round(v * args.size / 512) for v in BOX_512)
    box_args = [] if args.detect else ["--box", *map(str, box)]

    official_cwd = work / "official"  # the official code writes temp/result.avi under its working folder
    (official_cwd / "temp").mkdir(parents=True)
    env_official = official_env(work, args.device)

    def official(out: Path) -> float:
        argv = [str(args.official_python), str(checkout / "inference.py"),
                "--checkpoint_path", str(weights["checkpoint"]), "--face", str(face), "--audio", str(audio),
                "--outfile", str(out), *box_args]  # fmt: skip
        return run_timed(argv, official_cwd, env_official, out.with_suffix(".log"))

    def cold(out: Path) -> tuple[dict, float]:
        argv = [sys.executable, "-m", "lipsync_cli", "run", "--model", "wav2lip", "--image", str(face),
                "--audio", str(audio), "-o", str(out), "--paste", "exact", "--device", args.device,
                "--checkpoint", str(weights["checkpoint"]), "--detector-checkpoint", str(weights["detector"]),
                *box_args, "--json", "--overwrite"]  # fmt: skip
        return run_json(argv)

    params = {
        "face": str(face),
        "audio": str(audio),
        "format": "mp4",
        "paste": "exact",
        "overwrite": True,
        "weights": {role: str(path) for role, path in weights.items()},
        "box": None if args.detect else box,
    }
    with WorkerClient(env, device=args.device) as worker:
        worker.start()
        worker.render({**params, "output": str(work / "warm_first.mp4")})  # loads the models: not timed
        rounds = interleaved_rounds(
            args.rounds,
            lambda index: official(work / f"official_{index}.mp4"),
            lambda index: cold(work / f"cold_{index}.mp4"),
            lambda index: worker.render({**params, "output": str(work / f"warm_{index}.mp4")}).stats,
        )
    result = rounds.last_result

    face_box = result.get("face_box") or {}
    compared_box = tuple(face_box[k] for k in ("top", "bottom", "left", "right")) if face_box else box
    diff = compare(work / "official_0.mp4", work / "cold_0.mp4", compared_box)  # type: ignore[arg-type]
    clip_s = duration(audio)
    print(
        f"\n## Wav2Lip, {args.seconds:g} s of speech ({result['frames']} frames), {args.size}x{args.size} "
        f"portrait, {'S3FD detection' if args.detect else f'--box {box}'}, {args.device}"
    )
    print_setup(
        {
            "machine": machine_line(args.device),
            "load averages (1/5/15 min) before / after": f"{rounds.load_before} → {rounds.load_after}",
            "weights": weights_kind,
            "official": f"{checkout} ({checkout_commit(checkout)}), patches: {patch_lines(PATCHES)}",
            "official Python": python_versions(args.official_python, ("torch", "numpy", "cv2", "librosa")),
            "lipsync backend Python": python_versions(python, ("torch", "numpy", "cv2")),
            "frames, official against lipsync run": diff.summary(),
        }
    )
    speed_table(list(rounds.paths.values()), rounds.paths[OFFICIAL])
    print_table("lipsync stages, median s", ["stage", COLD, WARM], rounds.stage_rows(STAGES))
    if args.json:
        figures = {**rounds.figures(), "frames": diff.__dict__, "clip_s": clip_s}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
