"""The whole sync check of one video: face tracks, crops, embeddings, offset search, scores.

Follows syncnet_python's ``run_pipeline.py`` then ``run_syncnet.py`` (one score per face track), in
two decoding passes so that memory stays bounded: the first detects faces and scene cuts, the second
crops the tracked faces. Deliberate differences: no lossy MPEG-4/JPEG round trips, and a video shorter
than the official minimum track (100 frames, 4 s) is still scored, with half its length as the minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from lipsync_kit.errors import BackendError, ErrorCode

from .detection import FaceDetector
from .media import FPS, iter_frames, load_speech, probe_video
from .mfcc import MFCC_PER_FRAME, SAMPLES_PER_FRAME, mfcc
from .offsets import DEFAULT_VSHIFT, SyncScores, sync_scores
from .syncnet import SyncNet
from .tracking import MIN_TRACK, SceneCutter, Track, crop_face, scenes_from_cuts, smooth_track, track_faces

__all__ = ["EvalOptions", "TrackResult", "VideoResult", "evaluate_video", "score_track"]

WINDOW: Final = 5  # video frames per SyncNet window (0.2 s)
AUDIO_WINDOW: Final = WINDOW * MFCC_PER_FRAME  # 20 MFCC steps
DETECT_BATCH: Final = 8
EMBED_BATCH: Final = 20  # run_syncnet.py --batch_size

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalOptions:
    vshift: int = DEFAULT_VSHIFT
    min_track: int | None = None  # None: the official 100, or half the video when it is shorter than that
    box: tuple[float, float, float, float] | None = None  # fixed face box (x1, y1, x2, y2): no detection
    keep_crops: int = 0  # mouth crops to keep per track for the sheet (evenly spaced)


@dataclass(frozen=True)
class TrackResult:
    first_frame: int
    frames: int
    scores: SyncScores
    crops: tuple[np.ndarray, ...]  # a few 224 x 224 BGR crops, for the sheet
    crop_frames: tuple[int, ...]


@dataclass(frozen=True)
class VideoResult:
    frames: int
    tracks: tuple[TrackResult, ...]

    def tracked_frames(self) -> int:
        covered = np.zeros(self.frames, dtype=bool)
        for t in self.tracks:
            covered[t.first_frame : t.first_frame + t.frames] = True
        return int(covered.sum())

    def per_second(self) -> list[float | None]:
        """Mean per-window confidence of every started second (None where no track has a window)."""
        seconds = -(-self.frames // FPS)
        sums, counts = np.zeros(seconds), np.zeros(seconds)
        for t in self.tracks:
            for i, conf in enumerate(t.scores.framewise):
                second = (t.first_frame + i) // FPS
                sums[second] += conf
                counts[second] += 1
        return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]

    def to_stats(self) -> dict[str, Any]:
        """The JSON record: mean LSE-D / LSE-C over the tracks, offset and curve of the longest track."""
        main = max(self.tracks, key=lambda t: t.frames).scores
        return {
            "lse_d": float(np.mean([t.scores.min_dist for t in self.tracks])),
            "lse_c": float(np.mean([t.scores.confidence for t in self.tracks])),
            "offset_frames": main.offset,
            "offset_ms": main.offset * 1000 // FPS,
            "offsets": list(main.offsets),
            "curve": [round(c, 6) for c in main.curve],
            "dists": [round(d, 6) for d in main.mean_dists],
            "frames": self.frames,
            "fps": FPS,
            "face_share": self.tracked_frames() / self.frames,
            "per_second": [None if c is None else round(c, 6) for c in self.per_second()],
            "tracks": [
                {
                    "first_frame": t.first_frame,
                    "frames": t.frames,
                    "lse_d": t.scores.min_dist,
                    "lse_c": t.scores.confidence,
                    "offset_frames": t.scores.offset,
                }
                for t in self.tracks
            ],
        }


@torch.inference_mode()
def score_track(
    net: SyncNet, crops: np.ndarray, speech: np.ndarray, device: torch.device, vshift: int = DEFAULT_VSHIFT
) -> SyncScores:
    """Scores of one track: crops (F, 224, 224, 3) uint8 BGR and its speech (16-bit values at 16 kHz).

    Raises:
        BackendError(AUDIO_TOO_SHORT): fewer than 6 frames of both picture and speech (no window).
    """
    features = torch.from_numpy(mfcc(speech)).float()
    length = min(len(crops), len(speech) // SAMPLES_PER_FRAME)
    windows = length - WINDOW  # the official loop stops one window short; kept for equal scores
    if windows < 1:
        raise BackendError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"{length} frames of face and speech overlap; SyncNet needs at least {WINDOW + 1} (0.24 s)",
            "use a longer clip",
        )
    lip, aud = [], []
    for start in range(0, windows, EMBED_BATCH):
        stop = min(windows, start + EMBED_BATCH)
        video = torch.from_numpy(crops[start : stop + WINDOW - 1]).to(device).permute(3, 0, 1, 2).float()
        lip.append(
            net.forward_lip(torch.stack([video[:, v : v + WINDOW] for v in range(stop - start)])).cpu()
        )
        audio = torch.stack(
            [
                features[None, :, v * MFCC_PER_FRAME : v * MFCC_PER_FRAME + AUDIO_WINDOW]
                for v in range(start, stop)
            ]
        )
        aud.append(net.forward_aud(audio.to(device)).cpu())
    return sync_scores(torch.cat(lip), torch.cat(aud), vshift)


def _find_tracks(
    path: Path, detector: FaceDetector | None, opts: EvalOptions, progress: Progress
) -> tuple[list[Track], int]:
    """Pass 1: detections and scene cuts over every frame; the tracks per shot and the frame count.

    ``detector`` may be None only with a fixed ``opts.box``.
    """
    info = probe_video(path)
    cutter = SceneCutter(info.width)
    detections: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    count = 0

    def flush() -> None:
        if detector is not None:
            detections.extend(detector.detect(batch))
        batch.clear()
        progress("detection", count, 0)

    for frame in iter_frames(path, info):
        count += 1
        if opts.box is not None:
            continue
        cutter.add(frame)
        batch.append(frame)
        if len(batch) == DETECT_BATCH:
            flush()
    flush()
    if opts.box is not None:  # a fixed box: one track over the whole video
        return [Track(np.arange(count), np.tile(np.asarray(opts.box, dtype=np.float64), (count, 1)))], count
    min_track = opts.min_track if opts.min_track is not None else min(MIN_TRACK, count // 2)
    tracks = []
    for start, end in scenes_from_cuts(cutter.cuts, count):
        if end - start >= min_track:
            tracks += track_faces(detections[start:end], start, min_track=min_track)
    return tracks, count


def _crop_tracks(path: Path, tracks: Sequence[Track]) -> list[np.ndarray]:
    """Pass 2: the (F, 224, 224, 3) crops of every track."""
    smoothed = [smooth_track(t) for t in tracks]
    crops: list[list[np.ndarray]] = [[] for _ in tracks]
    last = max(int(t.frames[-1]) for t in tracks)
    for index, frame in enumerate(iter_frames(path, probe_video(path))):
        for t, (x, y, s), out in zip(tracks, smoothed, crops, strict=True):
            k = index - int(t.frames[0])
            if 0 <= k < len(t.frames):
                out.append(crop_face(frame, x[k], y[k], s[k]))
        if index >= last:
            break
    return [np.stack(c) for c in crops]


def evaluate_video(
    video: Path,
    audio: Path | None,
    net: SyncNet,
    detector: FaceDetector | None,
    device: torch.device,
    opts: EvalOptions,
    progress: Progress,
) -> VideoResult:
    """Score a video against its own audio track or the speech in ``audio``.

    Raises:
        BackendError: ``bad_input`` (not a video), ``bad_audio`` (no audio stream / unreadable),
        ``no_face`` (no face track), ``audio_too_short`` (no complete window).
    """
    info = probe_video(video)
    if audio is None and not info.has_audio:
        raise BackendError(
            ErrorCode.BAD_AUDIO, f"no audio stream in {video}", "pass the speech with --audio FILE"
        )
    speech = load_speech(audio if audio is not None else video)
    tracks, count = _find_tracks(video, detector, opts, progress)
    if not tracks:
        raise BackendError(
            ErrorCode.NO_FACE,
            f"no face track in {video}: SyncNet needs a face of at least 100 px seen over "
            f"{opts.min_track or min(MIN_TRACK, count // 2)} frames of one shot",
            "check that the video shows a face; --box x1 y1 x2 y2 gives a fixed face box",
        )
    all_crops = _crop_tracks(video, tracks)
    results = []
    for i, (track, crops) in enumerate(zip(tracks, all_crops, strict=True)):
        progress("syncnet", i, len(tracks))
        first = int(track.frames[0])
        segment = speech[first * SAMPLES_PER_FRAME : (first + len(crops)) * SAMPLES_PER_FRAME]
        scores = score_track(net, crops, segment, device, opts.vshift)
        picks = np.linspace(0, len(crops) - 1, opts.keep_crops).round().astype(int) if opts.keep_crops else []
        results.append(
            TrackResult(
                first,
                len(crops),
                scores,
                tuple(crops[p] for p in picks),
                tuple(first + int(p) for p in picks),
            )
        )
    progress("syncnet", len(tracks), len(tracks))
    return VideoResult(count, tuple(results))
