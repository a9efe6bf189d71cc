"""Fixtures of the SyncNet backend tests: the goldens and the inputs they were made from."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from standin import load_golden

SYNCNET_DATA = Path(__file__).resolve().parents[2] / "data" / "syncnet"


def clip_frames(base: np.ndarray, count: int) -> list[np.ndarray]:
    """The goldens' clip (make_syncnet_goldens.py): frame k rolled by (k % 5 - 2, (k // 5) % 3 - 1) px."""
    return [np.roll(base, ((k % 5) - 2, ((k // 5) % 3) - 1), axis=(0, 1)) for k in range(count)]


@pytest.fixture(scope="session")
def syncnet_data() -> Path:
    return SYNCNET_DATA


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    return load_golden(SYNCNET_DATA / "golden_syncnet.npz")


@pytest.fixture(scope="session")
def portrait(golden: dict[str, np.ndarray]) -> np.ndarray:
    image = cv2.imread(str(SYNCNET_DATA.parent / "astronaut_256.jpg"))
    assert int(image.astype(np.int64).sum()) == int(golden["base_checksum"]), "JPEG decoder differs"
    return image
