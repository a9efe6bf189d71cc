"""Measure librosa and face-alignment against the kit's own audio and S3FD code (README, "Design notes").

Runs in a scratch venv that has the backend's packages plus the two libraries, never in a backend env::

    uv venv /tmp/libcheck --python envs/wav2lip-dev/bin/python
    uv pip install --python /tmp/libcheck/bin/python torch numpy librosa face-alignment
    /tmp/libcheck/bin/python bench/library_choices.py --site envs/wav2lip-dev/lib/python3.11/site-packages

It prints one JSON object: parity against the goldens, warm run times, cold-start costs (fresh
interpreters, interleaved so they share the machine's load) and the size each library adds to the env.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
KIT = REPO_ROOT / "backends" / "common"
sys.path[:0] = [str(KIT), str(REPO_ROOT / "tests" / "backends")]

from lipsync_kit import audio  # noqa: E402
from lipsync_kit.s3fd import S3FD, FaceDetector, detect_faces  # noqa: E402
from standin import load_golden, standin_state_dict  # noqa: E402

WAV2LIP_DATA = REPO_ROOT / "tests" / "data" / "wav2lip"
MEAN = (104.0, 117.0, 123.0)
COLD_CASES = {
    "numpy": "import numpy",
    "kit audio, first log-mel": "import numpy as np; from lipsync_kit import audio; "
    "audio.log_mel_spectrogram(np.ones(16000), pad_mode='reflect')",
    "librosa, first stft + mel": "import numpy as np, librosa; librosa.stft(np.ones(16000), n_fft=800, "
    "hop_length=200); librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)",
    "torch": "import torch",
    "torch + librosa, first stft + mel": "import torch, numpy as np, librosa; librosa.stft(np.ones(16000), "
    "n_fft=800, hop_length=200); librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)",
    "torch + lipsync_kit.s3fd": "import torch, lipsync_kit.s3fd",
    "torch + face_alignment": "import torch, face_alignment",
}


def best_of(fn: Callable[[], object], runs: int = 5) -> float:
    """Seconds of the fastest of ``runs`` calls, after one warm-up call."""
    fn()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return round(min(seconds), 4)


def librosa_figures() -> dict[str, Any]:
    import librosa

    golden = load_golden(WAV2LIP_DATA / "golden_mel.npz")
    r = audio.WAV2LIP_LOG_MEL
    basis = librosa.filters.mel(sr=r.sample_rate, n_fft=r.n_fft, n_mels=r.n_mels, fmin=r.fmin, fmax=r.fmax)

    def log_mel(y: np.ndarray, pad_mode: str) -> np.ndarray:
        """Wav2Lip's recipe with librosa's STFT and filterbank in place of the kit's."""
        y = y.astype(np.float64)
        emphasised = np.concatenate([y[:1], y[1:] - r.preemphasis * y[:-1]])
        stft = librosa.stft(emphasised, n_fft=r.n_fft, hop_length=r.hop, win_length=r.win, pad_mode=pad_mode)
        db = 20 * np.log10(np.maximum(10 ** (r.min_level_db / 20), basis @ np.abs(stft))) - r.ref_level_db
        top = r.max_abs_value
        return np.clip(2 * top * (db - r.min_level_db) / -r.min_level_db - top, -top, top).astype(np.float32)

    wav = golden["wav"]
    speech = np.random.default_rng(0).standard_normal(16000 * 60).astype(np.float32) * 0.1
    return {
        "version": librosa.__version__,
        "basis_max_diff_vs_golden": float(np.abs(basis - golden["mel_basis"]).max()),
        "mel_reflect_max_diff_vs_golden_librosa_0.7": float(
            np.abs(log_mel(wav, "reflect") - golden["mel"]).max()
        ),
        "mel_constant_max_diff_vs_golden_librosa_modern": float(
            np.abs(log_mel(wav, "constant") - golden["mel_modern_librosa"]).max()
        ),
        "kit_mel_reflect_max_diff_vs_golden": float(
            np.abs(audio.log_mel_spectrogram(wav, pad_mode="reflect") - golden["mel"]).max()
        ),
        "warm_log_mel_60s_seconds": {
            "kit": best_of(lambda: audio.log_mel_spectrogram(speech, pad_mode="reflect")),
            "librosa": best_of(lambda: log_mel(speech, "reflect")),
        },
    }


def face_alignment_figures() -> dict[str, Any]:
    from face_alignment.detection.sfd.bbox import nms
    from face_alignment.detection.sfd.detect import get_predictions
    from face_alignment.detection.sfd.net_s3fd import s3fd

    golden = load_golden(WAV2LIP_DATA / "golden_s3fd.npz")
    state = standin_state_dict(WAV2LIP_DATA / "schema_s3fd.json")
    theirs = s3fd().eval()
    theirs.load_state_dict(state, strict=True)
    ours = S3FD().eval()
    ours.load_state_dict(state, strict=True)
    images = golden["images_bgr"]
    # face-alignment flips its input "RGB to BGR" before the mean: our BGR frames, flipped, are the
    # input Wav2Lip's fork gives the same network.
    bgr = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float()
    x = bgr.flip(1) - torch.tensor(MEAN).view(1, 3, 1, 1)
    with torch.inference_mode():
        raw = theirs(x)
    raw_diff = max(
        float(np.abs(raw[2 * level + i].numpy() - golden[f"{'cls' if i == 0 else 'reg'}{level + 1}"]).max())
        for level in range(6)
        for i in (0, 1)
    )
    levels = [(torch.from_numpy(golden[f"cls{n}"]), torch.from_numpy(golden[f"reg{n}"])) for n in range(1, 7)]

    def their_post() -> list[np.ndarray]:
        olist = [a for cls, reg in levels for a in (F.softmax(cls, dim=1).numpy(), reg.numpy())]
        lists = get_predictions(olist, len(images))
        kept = [b[nms(b, 0.3)] for b in lists]
        return [b[b[:, -1] > 0.5] for b in kept]

    def sorted_rows(rows: np.ndarray) -> np.ndarray:
        return rows[np.lexsort(rows[:, :4].T)]

    their_dets = their_post()
    detector = FaceDetector(ours)
    frames = list(images)
    return {
        "raw_max_diff_vs_golden": raw_diff,
        "detections_max_diff_vs_golden_px": max(
            float(np.abs(sorted_rows(d) - sorted_rows(golden[f"detections_img{i}"])).max())
            for i, d in enumerate(their_dets)
        ),
        "post_processing_seconds": {
            "face_alignment": best_of(their_post),
            "kit_all_detections": best_of(lambda: detect_faces(levels)),
        },
        "detection_2_frames_240x320_seconds": {
            "kit_best_box": best_of(lambda: detector.detect(frames), runs=3),
            "kit_all_detections": best_of(lambda: detector.detect_all(frames), runs=3),
        },
    }


def cold_starts(runs: int) -> dict[str, dict[str, float]]:
    """Fresh-interpreter seconds per case: min and median over ``runs`` interleaved rounds."""
    env = {"PYTHONPATH": str(KIT)}
    seconds: dict[str, list[float]] = {name: [] for name in COLD_CASES}
    for _ in range(runs):
        for name, code in COLD_CASES.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            seconds[name].append(time.perf_counter() - start)
    return {
        k: {"min": round(min(v), 2), "median": round(statistics.median(v), 2)} for k, v in seconds.items()
    }


def added_megabytes(base_site: Path, roots: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per library, the installed size of its dependency closure less what ``base_site`` already has."""
    site = Path(md.distribution("numpy").locate_file(""))
    dists = {_norm(d.metadata["Name"]): d for d in md.distributions(path=[str(site)])}
    present = {_norm(d.metadata["Name"]) for d in md.distributions(path=[str(base_site)])}

    def size(name: str) -> float:
        files = dists[name].files or []
        return sum(p.stat().st_size for f in files if (p := site / f).is_file()) / 1e6

    result = {}
    for root in roots:
        seen, todo = set(), [_norm(root)]
        while todo:
            name = todo.pop()
            if name in seen or name not in dists:
                continue
            seen.add(name)
            for req in dists[name].requires or []:
                if "extra ==" not in req:
                    todo.append(_norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]))
        added = {name: round(size(name), 1) for name in sorted(seen - present, key=size, reverse=True)}
        result[root] = {"total": round(sum(added.values()), 1), **added}
    return result


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--site", type=Path, required=True, help="site-packages of the backend env to compare to"
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds of cold starts")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(
        json.dumps(
            {
                "librosa": librosa_figures(),
                "face_alignment": face_alignment_figures(),
                "cold_start_seconds": cold_starts(args.runs),
                "added_to_env_mb": added_megabytes(args.site, ("librosa", "face-alignment")),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
