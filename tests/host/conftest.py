"""Fixtures for host tests: a private LIPSYNC_HOME, the real wav2lip env, stand-in checkpoints, media."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import make_speech

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter

TESTS_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = TESTS_DIR / "data"
REPO_ROOT = TESTS_DIR.parent


@pytest.fixture(autouse=True)
def lipsync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LIPSYNC_HOME (weights, logs); envs stay in the checkout's envs/."""
    home = tmp_path / "lipsync-home"
    monkeypatch.setenv("LIPSYNC_HOME", str(home))
    monkeypatch.setenv("LIPSYNC_OFFLINE", "1")  # tests never reach for the network by accident
    monkeypatch.delenv("LIPSYNC_WAV2LIP_PYTHON", raising=False)
    return home


@pytest.fixture(scope="session")
def wav2lip_python() -> Path:
    """The real wav2lip env, built by the env builder (a no-op when its stamp is current)."""
    return BackendEnv.named("wav2lip").ensure(PlainReporter())


@pytest.fixture(scope="session")
def standin_checkpoints(tmp_path_factory: pytest.TempPathFactory, wav2lip_python: Path) -> dict[str, Path]:
    """Stand-in generator + detector files in the official formats (made by the backend env's torch)."""
    out = tmp_path_factory.mktemp("standin")
    subprocess.run(
        [
            str(wav2lip_python),
            str(TESTS_DIR / "backends" / "make_standin_checkpoints.py"),
            str(out),
            str(DATA_DIR / "wav2lip"),
        ],
        check=True,
    )
    return {"generator": out / "wav2lip_standin.pth", "detector": out / "s3fd_standin.pth"}


@pytest.fixture(scope="session")
def face_image() -> Path:
    return DATA_DIR / "astronaut_256.jpg"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 0.8 s of espeak-ng speech at 22.05 kHz."""
    return make_speech(tmp_path_factory.mktemp("speech") / "speech.wav", "Hello there.")


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[object]:
    """Run the real ``lipsync`` entry point in a subprocess; returns CompletedProcess (bytes stdout)."""

    def run(
        *args: str | os.PathLike[str],
        check: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "lipsync_cli", *map(str, args)]
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            argv, capture_output=True, check=check, env=full_env, timeout=timeout, cwd=tmp_path
        )

    yield run


def require(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")


@pytest.fixture
def render_wav2lip(run_cli, standin_checkpoints: dict[str, Path]):
    """``lipsync run -m wav2lip`` on the CPU with the stand-in checkpoints as custom files."""

    def render(face, audio, output, *extra: str, detector: Path | None = None):
        return run_cli(
            "run", "--model", "wav2lip", "--image", face, "--audio", audio, "-o", output, "--device", "cpu",
            "--checkpoint", standin_checkpoints["generator"],
            "--detector-checkpoint", detector or standin_checkpoints["detector"],
            *extra,
        )  # fmt: skip

    return render
