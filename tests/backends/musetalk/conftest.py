"""Stand-in weight files of the MuseTalk tests, written once per test run and shared by every test.

The UNet alone is 850M parameters (3.4 GB in fp32): it is made only when a test asks for it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("make_musetalk_standins.py")


@pytest.fixture(scope="session")
def musetalk_data(data_dir: Path) -> Path:
    return data_dir / "musetalk"


def _write(part: str, factory: pytest.TempPathFactory, data: Path) -> Path:
    out = factory.mktemp(f"musetalk-{part}")
    subprocess.run([sys.executable, str(SCRIPT), str(out), str(data), part], check=True)
    return out


@pytest.fixture(scope="session")
def whisper_standin(tmp_path_factory: pytest.TempPathFactory, musetalk_data: Path) -> Path:
    """Folder with whisper_standin.safetensors, whisper_config.json, whisper_preprocessor_config.json."""
    return _write("whisper", tmp_path_factory, musetalk_data)


@pytest.fixture(scope="session")
def vae_standin(tmp_path_factory: pytest.TempPathFactory, musetalk_data: Path) -> Path:
    """Folder with vae_standin.safetensors (legacy attention names) and vae_config.json."""
    return _write("vae", tmp_path_factory, musetalk_data)


@pytest.fixture(scope="session")
def unet_standin(tmp_path_factory: pytest.TempPathFactory, musetalk_data: Path) -> Path:
    """Folder with unet_standin.pth (3.4 GB raw state dict) and musetalk.json."""
    return _write("unet", tmp_path_factory, musetalk_data)
