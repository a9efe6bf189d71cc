"""Fixtures for backend tests; these run inside a backend's environment (they import torch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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


@pytest.fixture
def full_fp32() -> Iterator[None]:
    """Full float32 convolutions and matmuls on CUDA for golden parity.

    PyTorch runs cuDNN convolutions in TF32 by default, which moves the stand-in networks' outputs past
    the float32 tolerances of the goldens; with TF32 off a GPU is as close to them as the CPU.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
