"""Baseline for bench/wav2lip.py: the official ``inference.py`` flow, re-created step by step.

Run with a Python that has the Wav2Lip backend (the backend env, or a GPU image's Python):

    python bench/official_wav2lip.py --face F --audio A --checkpoint C --detector D --device cuda --out O

The official repository cannot be fetched on every machine, so this script rebuilds its flow from
our parity-tested parts, keeping every cost the official code pays (research/wav2lip.md §2):
the generator with its BatchNorm layers unfolded; the face encoder run again for every frame (the
still image's crop is copied into each batch and resized per frame); per-frame masking and
concatenation in NumPy; the official mel chunking (the last frames clamped); every frame written
to an intermediate MJPEG-in-AVI file (the official uses DIVX) and then a second ffmpeg pass that
re-encodes it with the audio. Its frames are the ones ``--paste exact`` produces
(tests/backends/wav2lip/test_pipeline.py). Prints one JSON object with seconds per stage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from lipsync_kit.audio import load_audio
from lipsync_kit.devices import resolve_device
from lipsync_kit.probe import ffmpeg_exe
from lipsync_kit.s3fd import FaceDetector, load_s3fd
from lipsync_kit.timing import StageClock
from lipsync_wav2lip.face_boxes import DEFAULT_PADS, pad_and_clip, smooth_boxes
from lipsync_wav2lip.features import SAMPLE_RATE, melspectrogram, official_chunk_starts
from lipsync_wav2lip.models import load_generator

FACE_SIZE = 96
MEL_STEP = 16
BATCH_SIZE = 128
FACE_DET_BATCH_SIZE = 16
FPS = 25.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--face", "--audio", "--checkpoint", "--detector", "--out"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    clock = StageClock()
    lap = clock.lap
    frame = cv2.imread(str(args.face))
    samples = load_audio(args.audio, SAMPLE_RATE)
    lap("load_inputs")
    mel = melspectrogram(samples)
    chunks = [mel[:, start : start + MEL_STEP] for start in official_chunk_starts(mel.shape[1], FPS)]
    lap("features")

    # The official code builds the detector inside face_detect() and loads the generator per run.
    detector = FaceDetector(load_s3fd(args.detector, device), device)
    generator = load_generator(args.checkpoint, device, fold_bn=False)
    lap("model_load")

    box = detector.detect([frame], batch_size=FACE_DET_BATCH_SIZE)[0]
    if box is None:
        raise SystemExit("no face")
    padded = pad_and_clip(np.asarray([box]), DEFAULT_PADS, frame.shape[:2])
    y1, y2, x1, x2 = (int(v) for v in smooth_boxes(padded)[0])
    face = frame[y1:y2, x1:x2]
    lap("detection")

    with tempfile.TemporaryDirectory() as temp:
        avi = Path(temp) / "result.avi"
        height, width = frame.shape[:2]
        writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
        inference = 0.0
        with torch.inference_mode():
            for start in range(0, len(chunks), BATCH_SIZE):
                batch = chunks[start : start + BATCH_SIZE]
                started = time.perf_counter()
                faces = np.stack([cv2.resize(face, (FACE_SIZE, FACE_SIZE)) for _ in batch])
                masked = faces.copy()
                masked[:, FACE_SIZE // 2 :] = 0
                face_batch = np.concatenate((masked, faces), axis=3) / 255.0
                mel_batch = np.asarray(batch).reshape(len(batch), 80, MEL_STEP, 1)
                face_t = torch.FloatTensor(np.transpose(face_batch, (0, 3, 1, 2))).to(device)
                mel_t = torch.FloatTensor(np.transpose(mel_batch, (0, 3, 1, 2))).to(device)
                prediction = generator(mel_t, face_t).cpu().numpy().transpose(0, 2, 3, 1) * 255.0
                inference += time.perf_counter() - started
                for mouth in prediction:
                    out = frame.copy()
                    out[y1:y2, x1:x2] = cv2.resize(mouth.astype(np.uint8), (x2 - x1, y2 - y1))
                    writer.write(out)
        writer.release()
        lap("render")
        clock.seconds["inference"] = inference
        clock.seconds["encode_frames"] = clock.seconds.pop("render") - inference
        subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-y",
                "-i",
                str(args.audio),
                "-i",
                str(avi),
                "-strict",
                "-2",
                "-q:v",
                "1",
                str(args.out),
            ],
            check=True,
        )
        lap("mux_reencode")
    clock.seconds["encode"] = clock.seconds.pop("encode_frames") + clock.seconds.pop("mux_reencode")
    print(json.dumps({"frames": len(chunks), "seconds": clock.seconds}))


if __name__ == "__main__":
    main()
