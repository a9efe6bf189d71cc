"""Fixtures for host tests: a private LIPSYNC_HOME, the real wav2lip env, stand-in checkpoints, media."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import speech

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
def speech_wav() -> Path:
    """About 1 s of committed espeak-ng speech at 22.05 kHz ("Hello there.")."""
    return speech("hello")


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[object]:
    """Run the real ``lipsync`` entry point in a subprocess; returns CompletedProcess (bytes stdout)."""

    def run(
        *args: str | os.PathLike[str],
        check: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "lipsync_cli", *map(str, args)]
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            argv,
            capture_output=True,
            check=check,
            env=full_env,
            timeout=timeout,
            cwd=tmp_path,
            input=stdin if stdin is not None else b"",
        )

    yield run


@pytest.fixture
def render_wav2lip(run_cli, standin_checkpoints: dict[str, Path]):
    """``lipsync run -m wav2lip`` on the CPU with the stand-in checkpoints as custom files."""

    def render(face, audio, output, *extra: str, detector: Path | None = None, stdin: bytes | None = None):
        return run_cli(
            "run", "--model", "wav2lip", "--image", face, "--audio", audio, "-o", output, "--device", "cpu",
            "--checkpoint", standin_checkpoints["generator"],
            "--detector-checkpoint", detector or standin_checkpoints["detector"],
            *extra,
            stdin=stdin,
        )  # fmt: skip

    return render


@pytest.fixture(scope="session")
def sadtalker_python() -> Path:
    """The real sadtalker env, built by the env builder (a no-op when its stamp is current)."""
    return BackendEnv.named("sadtalker").ensure(PlainReporter())


@pytest.fixture(scope="session")
def sadtalker_standins(tmp_path_factory: pytest.TempPathFactory, sadtalker_python: Path) -> dict[str, Path]:
    """SadTalker stand-in files in the official formats, made by the backend env's torch.

    The detector finds the astronaut's face in astronaut_512.jpg; the landmark net puts a mean face
    shape into any box (tests/backends/sadtalker/make_face_standins.py).
    """
    out = tmp_path_factory.mktemp("sadtalker-standin")
    scripts = TESTS_DIR / "backends" / "sadtalker"
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR / "backends")}
    subprocess.run(
        [
            str(sadtalker_python),
            str(scripts / "make_sadtalker_standins.py"),
            str(out),
            str(DATA_DIR / "sadtalker"),
        ],
        check=True,
        env=env,
    )
    subprocess.run(
        [str(sadtalker_python), str(scripts / "make_face_standins.py"), str(out)], check=True, env=env
    )
    return {
        "bundle": out / "SadTalker_standin.safetensors",
        "mapping_crop": out / "mapping_crop_standin.pth.tar",
        "mapping_full": out / "mapping_full_standin.pth.tar",
        "detector": out / "detection_Resnet50_astronaut.pth",
        "landmarks": out / "alignment_WFLW_4HG_mean_shape.pth",
    }


@pytest.fixture
def render_sadtalker(run_cli, sadtalker_standins: dict[str, Path]):
    """``lipsync run -m sadtalker[-still]`` on the CPU with the stand-in files as custom weights."""

    def render(model: str, face, audio, output, *extra: str, full: bool = False):
        weights = sadtalker_standins
        return run_cli(
            "run", "--model", model, "--image", face, "--audio", audio, "-o", output, "--device", "cpu",
            "--checkpoint", weights["bundle"],
            "--mapping-checkpoint", weights["mapping_full" if full else "mapping_crop"],
            "--detector-checkpoint", weights["detector"], "--landmark-checkpoint", weights["landmarks"],
            *extra,
            timeout=1800,
        )  # fmt: skip

    return render
