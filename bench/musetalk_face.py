"""MuseTalk's image side per frame: DWPose, BiSeNet masks and the paste, batched vs one frame at a time.

Run inside the musetalk backend env (torch, lipsync_musetalk), from the repository root::

    envs/musetalk/bin/python bench/musetalk_face.py --frames 8 --rounds 3 --device cpu

The networks get PyTorch's default initialisation: the work per frame does not depend on weight values.
Frames are the 512² astronaut portrait on a 1280×720 canvas. Baselines are the official ways, measured in
the same run: DWPose and BiSeNet one frame per forward pass (MuseTalk's batch size 1), and the paste
through whole-frame PIL conversions (``get_image``). Rounds interleave the paths.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
from _common import PORTRAIT_512, Series, machine_line, print_setup, speed_table
from lipsync_musetalk.bisenet import BiSeNet
from lipsync_musetalk.blending import blend_masks, paste_face
from lipsync_musetalk.dwpose import DWPose, RTMPose
from lipsync_musetalk.face_box import FaceBox
from lipsync_musetalk.parsing import FaceParser
from PIL import Image

FACE_BOX = FaceBox(500, 200, 780, 560)  # where a face would sit in the 720p frame


def _frames(count: int) -> list[np.ndarray]:
    portrait = cv2.imread(str(PORTRAIT_512))
    frames = []
    for i in range(count):
        canvas = np.full((720, 1280, 3), 40 + i, np.uint8)
        canvas[104:616, 384:896] = portrait
        frames.append(canvas)
    return frames


def _whole_frame_paste(
    frame: np.ndarray, face: np.ndarray, box: FaceBox, mask: np.ndarray, crop: tuple
) -> None:
    """The official paste: whole frame to PIL RGB and back."""
    body = Image.fromarray(frame[:, :, ::-1])
    large = body.crop(crop)
    large.paste(Image.fromarray(face[:, :, ::-1]), (box.x1 - crop[0], box.y1 - crop[1]))
    body.paste(large, crop[:2], Image.fromarray(mask))
    np.asarray(body)[:, :, ::-1].copy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(series: Series, device: torch.device, work: Callable[[], object]) -> None:
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    series.walls.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    frames = _frames(args.frames)
    dwpose = DWPose(RTMPose().eval(), device)
    face_parser = FaceParser(BiSeNet().eval(), device=device)
    boxes = [FACE_BOX] * len(frames)
    face = np.full((FACE_BOX.y2 - FACE_BOX.y1, FACE_BOX.x2 - FACE_BOX.x1, 3), 128, np.uint8)
    masks = blend_masks(frames, boxes, face_parser, batch_size=len(frames))  # also the warm-up
    dwpose.landmarks_batch(frames[:1])

    paths = {
        "DWPose, 1 frame per pass (official)": lambda: [dwpose.landmarks(f) for f in frames],
        f"DWPose, {len(frames)} frames per pass": lambda: dwpose.landmarks_batch(frames, len(frames)),
        "BiSeNet masks, 1 per pass (official)": lambda: blend_masks(frames, boxes, face_parser, batch_size=1),
        f"BiSeNet masks, {len(frames)} per pass": lambda: blend_masks(
            frames, boxes, face_parser, batch_size=len(frames)
        ),
        "paste, whole-frame PIL (official)": lambda: [
            _whole_frame_paste(f, face, FACE_BOX, m.mask, m.crop_box)
            for f, m in zip(frames, masks, strict=True)
        ],
        "paste, crop region only": lambda: [
            paste_face(f, face, FACE_BOX, m) for f, m in zip(frames, masks, strict=True)
        ],
    }
    series = {name: Series(name) for name in paths}
    for _ in range(args.rounds):
        for name, work in paths.items():
            _timed(series[name], device, work)
    print_setup(
        {
            "machine": machine_line(str(device)),
            "torch threads": str(torch.get_num_threads()),
            "frames": f"{len(frames)} × 1280×720, face box {tuple(FACE_BOX)}",
        }
    )
    names = list(paths)
    for baseline, other in zip(names[::2], names[1::2], strict=True):
        speed_table([series[baseline], series[other]], series[baseline], unit=len(frames), unit_name="frame")


if __name__ == "__main__":
    main()
