"""Fixtures of the SyncNet backend tests: the goldens and the inputs they were made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from standin import load_golden

SYNCNET_DATA = Path(__file__).resolve().parents[2] / "data" / "syncnet"


@pytest.fixture(scope="session")
def syncnet_data() -> Path:
    return SYNCNET_DATA


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    return load_golden(SYNCNET_DATA / "golden_syncnet.npz")


@pytest.fixture(scope="session")
def portrait(golden: dict[str, np.ndarray]) -> np.ndarray:
    """astronaut_256.jpg as the generator's OpenCV decoded it (stored: JPEG decoders may differ)."""
    return golden["base_bgr"]


@pytest.fixture(scope="session")
def standin_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stand-in ``syncnet_v2.model`` and ``sfd_face.pth`` files (bare state dicts, official keys)."""
    import torch
    from standin import standin_state_dict

    out = tmp_path_factory.mktemp("weights")
    files = {"syncnet": out / "syncnet_v2.model", "detector": out / "sfd_face.pth"}
    torch.save(standin_state_dict(SYNCNET_DATA / "schema_syncnet.json"), files["syncnet"])
    torch.save(standin_state_dict(SYNCNET_DATA / "schema_sfd_face.json"), files["detector"])
    return files
