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


TWO_WIDTH = 192


def make_two_person_scene(
    shot1: int = 10, shot2: int = 8
) -> tuple[list[np.ndarray], dict[str, list[tuple[int, int, int, int]]]]:
    """Two people: A (the astronaut) and B (the astronaut with red and blue swapped), 64 px each.

    Shot 1 on grey: A on the left walking right 2 px a frame, B still on the right. Shot 2 on blue,
    after a cut: B on the left, A on the right. Returns the frames and each person's box per frame.
    """
    a = cv2.resize(cv2.imread(str(PORTRAIT)), (64, 64), interpolation=cv2.INTER_AREA)
    b = np.ascontiguousarray(a[:, :, ::-1])
    frames, where = [], {"A": [], "B": []}
    for index in range(shot1 + shot2):
        second = index >= shot1
        frame = np.empty((HEIGHT, TWO_WIDTH, 3), np.uint8)
        frame[:] = BACKGROUNDS[int(second)]
        places = {"A": (110, 24), "B": (20, 24)} if second else {"A": (10 + 2 * index, 30), "B": (112, 30)}
        for name, picture in (("A", a), ("B", b)):
            x, y = places[name]
            frame[y : y + 64, x : x + 64] = picture
            where[name].append((x, y, x + 64, y + 64))
        frames.append(frame)
    return frames, where


def find_people(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every portrait in each frame as (M, 5) x1, y1, x2, y2, score: a stand-in for ``detect_all``."""
    found = []
    for frame in frames:
        differs = np.ones(frame.shape[:2], bool)
        for colour in BACKGROUNDS:
            differs &= np.abs(frame.astype(np.int16) - colour).max(axis=2) > 12
        count, _labels, stats, _centres = cv2.connectedComponentsWithStats(differs.astype(np.uint8))
        rows = [(x, y, x + w, y + h, 0.9) for x, y, w, h, area in stats[1:count].tolist() if area > 200]
        found.append(np.array(rows, np.float32).reshape(-1, 5))
    return found
