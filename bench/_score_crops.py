"""Score the official pipeline's own crop videos with lipsync's SyncNet path (run with the syncnet env).

    python _score_crops.py SYNCNET_MODEL CROP.avi...

Each crop video is read the way ``SyncNetInstance.evaluate`` reads it (ffmpeg to JPEG frames, 16 kHz
16-bit audio); prints one JSON line per video with LSE-D, LSE-C and the offset. Equal numbers to the
official run_syncnet.py show that the network, MFCC and offset search agree on identical inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import cv2
import numpy as np
import torch
from lipsync_kit.probe import ffmpeg_exe
from lipsync_syncnet.backend import load_syncnet
from lipsync_syncnet.evaluate import score_track


def main(model: Path, videos: list[Path]) -> None:
    net = load_syncnet(model, torch.device("cpu"))
    for video in videos:
        with tempfile.TemporaryDirectory() as tmp:
            ffmpeg = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(video)]
            subprocess.run([*ffmpeg, "-threads", "1", "-f", "image2", f"{tmp}/%06d.jpg"], check=True)
            wav = f"{tmp}/audio.wav"
            subprocess.run(
                [*ffmpeg, "-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000", wav]
            )
            frames = np.stack([cv2.imread(str(f)) for f in sorted(Path(tmp).glob("*.jpg"))])
            with wave.open(wav) as w:
                audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        scores = score_track(net, frames, audio, torch.device("cpu"))
        print(
            json.dumps({"lse_d": scores.min_dist, "lse_c": scores.confidence, "offset_frames": scores.offset})
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
