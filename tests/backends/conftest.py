"""Fixtures for backend tests; these run inside a backend's environment (they import torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from standin_weights import make_state_dict

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def load_schema(path: Path) -> dict[str, tuple[int, ...]]:
    """An official ``schema_*.json``: ordered ``[key, shape]`` pairs."""
    return {key: tuple(shape) for key, shape in json.loads(path.read_text())}


def standin_state_dict(schema: Path) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights under the official key names (see standin_weights.py)."""
    return {k: torch.from_numpy(v) for k, v in make_state_dict(load_schema(schema)).items()}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def wav2lip_data() -> Path:
    return DATA_DIR / "wav2lip"


def load_golden(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
