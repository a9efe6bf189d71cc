"""Baseline for bench/sadtalker.py: the official SadTalker ``inference.py`` flow, re-created step by step.

Run with a Python that has the SadTalker backend (the backend env, or a GPU image's Python):

    python bench/official_sadtalker.py --face F --audio A --bundle B --mapping M --detector D \
        --landmarks L --device cuda --preprocess crop --out O

The official repository cannot be fetched on every machine, so this script rebuilds its flow from our
parity-tested parts (tests/backends/sadtalker), keeping every cost the official code pays
(research/sadtalker.md §1): batch size 2; the generator's full forward per batch, the source image
re-encoded every time (repeated over the batch); frames written to an intermediate file and encoded a
second time with the audio; in full modes a Poisson ``seamlessClone`` per frame, another intermediate
file and a third encode. The head-pose estimator the official code also loads is left out (it is never
called), which favours the baseline. Prints one JSON object with seconds per stage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from lipsync_kit.audio import load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.probe import ffmpeg_exe
from lipsync_kit.timing import StageClock
from lipsync_sadtalker.animate import driving_keypoints, prepare_source
from lipsync_sadtalker.audio_features import SAMPLE_RATE, blink_ratio, mel_windows
from lipsync_sadtalker.face_analysis import FaceAnalyzer
from lipsync_sadtalker.models import load_bundle, load_mapping
from lipsync_sadtalker.paste import paste_face
from lipsync_sadtalker.pipeline import FULL_MODES, analyse_source, driving_coefficients, to_uint8_frames
from lipsync_sadtalker.render_inputs import prepare_render_inputs

OFFICIAL_BATCH = 2
FPS = 25


def _mux(video: Path, audio: Path, out: Path) -> None:
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-i",
            str(video),
            "-i",
            str(audio),
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
            str(out),
        ],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--face", "--audio", "--bundle", "--mapping", "--detector", "--landmarks", "--out"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preprocess", default="crop")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    device = resolve_device(args.device)
    full = args.preprocess in FULL_MODES
    clock = StageClock()
    lap = clock.lap
    image = cv2.cvtColor(cv2.imread(str(args.face)), cv2.COLOR_BGR2RGB)
    samples = load_audio(args.audio, SAMPLE_RATE)
    lap("load_inputs")
    nets = load_bundle(args.bundle, device)
    mapping = load_mapping(args.mapping, 73 if full else 70, device)
    analyzer = FaceAnalyzer.from_files(args.detector, args.landmarks, device)
    lap("model_load")
    source = analyse_source(
        image, analyzer, nets.recon, mode=args.preprocess, size=args.size, face_index=None, what="source"
    )
    lap("crop_3dmm")
    windows = mel_windows(samples)
    blink = blink_ratio(len(windows), np.random.default_rng(0))
    coeffs = driving_coefficients(nets, windows, source.coeffs, blink=blink, pose_style=0, seed=0)
    lap("audio_to_coeffs")

    renderer = nets.renderer(mapping)
    inputs = prepare_render_inputs(source.crop, source.coeffs, coeffs, full=full, still=full)
    prepared = prepare_source(renderer, inputs.source_image, inputs.source_semantics)
    frames = []
    with torch.inference_mode():
        for start in range(0, inputs.num_frames, OFFICIAL_BATCH):
            driving = inputs.driving.take(list(range(start, min(start + OFFICIAL_BATCH, inputs.num_frames))))
            kp_driving = driving_keypoints(renderer, prepared, driving)
            batch_image = inputs.source_image.to(device).expand(len(driving), -1, -1, -1)
            kp_source = prepared.kp_source.expand(len(driving), -1, -1)
            out = nets.generator(batch_image, kp_source=kp_source, kp_driving=kp_driving)
            frames.extend(to_uint8_frames(out.prediction))
    lap("render")

    with tempfile.TemporaryDirectory() as temp:
        first = Path(temp) / "first.avi"
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(first), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        _mux(first, args.audio, args.out)
        lap("encode")
        if full:
            pasted = Path(temp) / "full.avi"
            height, width = image.shape[:2]
            writer = cv2.VideoWriter(str(pasted), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
            for frame in frames:
                writer.write(
                    cv2.cvtColor(paste_face(image, frame, source.info.region, "poisson"), cv2.COLOR_RGB2BGR)
                )
            writer.release()
            lap("paste")
            _mux(pasted, args.audio, args.out)
            lap("encode")
    print(json.dumps({"frames": len(frames), "seconds": clock.seconds}))


if __name__ == "__main__":
    main()
