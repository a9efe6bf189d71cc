"""A synthetic talking-head video for the video-engine tests: the committed astronaut portrait panned,
scaled and cut between two shots, with a few face-less frames, written losslessly with ffmpeg.

Not a test module: imported by tests/backends/test_video_*.py and tests/host/test_e2e_video.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

PORTRAIT = Path(__file__).resolve().parents[1] / "data" / "astronaut_256.jpg"
WIDTH, HEIGHT = 160, 112
BACKGROUNDS = ((90, 90, 90), (40, 60, 150))  # BGR of shot 1 and shot 2


@dataclass(frozen=True)
class Scene:
    frames: list[np.ndarray]  # (HEIGHT, WIDTH, 3) uint8 BGR
    boxes: list[tuple[int, int, int, int] | None]  # where the portrait is: (x1, y1, x2, y2), None if absent
    cut_at: int  # first frame of shot 2


def make_scene(shot1: int = 12, shot2: int = 10, empty: Sequence[int] = (5,)) -> Scene:
    """Shot 1: a 64 px portrait panning right 3 px a frame on grey; shot 2: an 80 px one on blue, still.

    Frames listed in ``empty`` show the background only.
    """
    portrait = cv2.imread(str(PORTRAIT))
    frames, boxes = [], []
    for index in range(shot1 + shot2):
        second = index >= shot1
        frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        frame[:] = BACKGROUNDS[int(second)]
        box = None
        if index not in empty:
            side = 80 if second else 64
            x1, y1 = (60, 20) if second else (10 + 3 * index, 30)
            frame[y1 : y1 + side, x1 : x1 + side] = cv2.resize(
                portrait, (side, side), interpolation=cv2.INTER_AREA
            )
            box = (x1, y1, x1 + side, y1 + side)
        frames.append(frame)
        boxes.append(box)
    return Scene(frames, boxes, shot1)


def write_lossless(frames: Sequence[np.ndarray], path: Path, rate: str = "30000/1001") -> Path:
    """FFV1 in Matroska (RGB kept exactly), at ``rate`` frames per second."""
    height, width = frames[0].shape[:2]
    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", rate, "-i", "-",
            "-c:v", "ffv1", "-pix_fmt", "bgr0", str(path)]  # fmt: skip
    subprocess.run(argv, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def find_portrait(frames: Sequence[np.ndarray]) -> list[tuple[int, int, int, int] | None]:
    """A stand-in face detector for the synthetic scene: the box of the pixels unlike both backgrounds.

    The real S3FD with stand-in weights finds "faces" anywhere, so the tracking logic is tested on this.
    """
    boxes: list[tuple[int, int, int, int] | None] = []
    for frame in frames:
        differs = np.ones(frame.shape[:2], bool)
        for colour in BACKGROUNDS:
            differs &= np.abs(frame.astype(np.int16) - colour).max(axis=2) > 12
        ys, xs = np.nonzero(differs)
        boxes.append(
            None if len(xs) < 50 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        )
    return boxes
