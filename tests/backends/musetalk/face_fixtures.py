"""Stand-in DWPose, BiSeNet and S3FD for MuseTalk's image-side tests, built once per test process.

Import the fixtures a test module needs (``from face_fixtures import dwpose_net``); the state dicts are
cached, so modules that each import a fixture share one build. Goldens and schemas are copies of the shared
reference under tests/data/musetalk (see its README.md).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lipsync_kit.s3fd import S3FD, FaceDetector
from lipsync_musetalk.bisenet import BiSeNet
from lipsync_musetalk.dwpose import DWPose, RTMPose
from lipsync_musetalk.parsing import FaceParser
from standin import load_golden, standin_state_dict
from torch import Tensor, nn

DATA = Path(__file__).resolve().parents[2] / "data"
MUSETALK_DATA = DATA / "musetalk"


@cache
def dwpose_state_dict() -> dict[str, Tensor]:
    return standin_state_dict(MUSETALK_DATA / "schema_dwpose.json")


@cache
def bisenet_state_dict() -> dict[str, Tensor]:
    return standin_state_dict(MUSETALK_DATA / "schema_bisenet.json")


@cache
def golden(name: str) -> dict[str, np.ndarray]:
    return load_golden(MUSETALK_DATA / f"{name}.npz")


def bbox_cases() -> list[dict[str, Any]]:
    return json.loads((MUSETALK_DATA / "golden_bbox_cases.json").read_text())["cases"]


class DesignedLabels(nn.Module):
    """A parser network whose main output is ``10 · one_hot(labels)``: argmax gives back ``labels``.

    The reference made its "designed label map" goldens this way, to test the mask post-processing on a
    face-shaped map instead of the stand-in network's noise.
    """

    def __init__(self, labels: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("labels", torch.from_numpy(labels.astype(np.int64)))

    def forward(self, x: Tensor) -> Tensor:
        one_hot = F.one_hot(self.labels, 19).permute(2, 0, 1).float()[None]
        return 10.0 * one_hot.expand(len(x), -1, -1, -1)


@pytest.fixture(scope="session")
def dwpose_net() -> RTMPose:
    net = RTMPose()
    net.load_state_dict(dwpose_state_dict(), strict=True)
    return net.eval()


@pytest.fixture(scope="session")
def dwpose(dwpose_net: RTMPose) -> DWPose:
    return DWPose(dwpose_net, "cpu")


@pytest.fixture(scope="session")
def bisenet() -> BiSeNet:
    net = BiSeNet()
    net.load_state_dict(bisenet_state_dict(), strict=True)
    return net.eval()


@pytest.fixture(scope="session")
def face_parser(bisenet: BiSeNet) -> FaceParser:
    """FaceParsing(left_cheek_width=90, right_cheek_width=90), as the goldens were made."""
    return FaceParser(bisenet, 90, 90, "cpu")


@pytest.fixture(scope="session")
def s3fd_detector() -> FaceDetector:
    net = S3FD()
    net.load_state_dict(standin_state_dict(DATA / "wav2lip" / "schema_s3fd.json"), strict=True)
    return FaceDetector(net.eval(), "cpu")
