"""Fixtures for backend tests; these run inside a backend's environment (they import torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def wav2lip_data() -> Path:
    return DATA_DIR / "wav2lip"


@pytest.fixture(scope="session")
def sadtalker_data() -> Path:
    return DATA_DIR / "sadtalker"
