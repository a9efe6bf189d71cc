"""The env builder with real uv: builds, stamps, staleness, concurrent builds, failures, external Pythons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lipsync_cli import paths
from lipsync_cli.envs import BackendEnv
from lipsync_cli.errors import LipsyncError
from lipsync_cli.output import PlainReporter

pytestmark = pytest.mark.slow


@pytest.fixture
def private_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the backend sources and an empty envs folder, so these tests can edit and rebuild freely."""
    source = paths.backends_dir()
    copy = tmp_path / "backends"
    for name in ("common", "wav2lip"):
        shutil.copytree(
            source / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    monkeypatch.setenv("LIPSYNC_BACKENDS", str(copy))
    monkeypatch.setenv("LIPSYNC_ENVS", str(tmp_path / "envs"))
    return copy


def test_checkout_env_is_ready_and_stamped(wav2lip_python: Path) -> None:
    env = BackendEnv.named("wav2lip")
    assert env.status() == "ready"
    stamp = env.stamp()
    assert stamp is not None and stamp["lock_sha256"] == env.expected_stamp()["lock_sha256"]
    check = subprocess.run(
        [str(wav2lip_python), "-c", "import torch, cv2, lipsync_wav2lip, lipsync_kit"], check=False
    )
    assert check.returncode == 0


def test_build_then_an_edited_lock_makes_it_stale(private_backends: Path) -> None:
    env = BackendEnv.named("wav2lip")
    assert env.status() == "missing"
    python = env.ensure(PlainReporter(quiet=True))
    assert python.exists() and env.status() == "ready"
    lock = private_backends / "wav2lip" / "uv.lock"
    lock.write_text(lock.read_text() + "\n")
    assert env.status() == "stale"


def test_two_concurrent_builds_run_uv_once(private_backends: Path) -> None:
    argv = [sys.executable, "-m", "lipsync_cli", "env", "build", "wav2lip"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=900) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    builds = sum("building the wav2lip environment" in err for _, err in outputs)
    assert builds == 1
    assert outputs[0][0] == outputs[1][0]  # both print the same interpreter


def test_uv_failure_is_env_build_failed(private_backends: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-cache"))
    env = BackendEnv.named("wav2lip")
    with pytest.raises(LipsyncError) as failure:
        env.ensure(PlainReporter(quiet=True))
    assert failure.value.code == "env_build_failed"
    assert "lipsync env build wav2lip --force" in (failure.value.hint or "")
    assert env.status() == "missing"  # a failed build never counts as ready


def test_missing_uv_is_reported(private_backends: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIPSYNC_UV", "/nonexistent/uv")
    with pytest.raises(LipsyncError) as failure:
        BackendEnv.named("wav2lip").ensure(PlainReporter(quiet=True))
    assert failure.value.code == "uv_not_found"


def test_external_python_runs_the_worker_from_sources(wav2lip_python: Path, monkeypatch, run_cli) -> None:
    monkeypatch.setenv("LIPSYNC_WAV2LIP_PYTHON", str(wav2lip_python))
    env = BackendEnv.named("wav2lip")
    assert env.status() == "external" and env.python == wav2lip_python
    assert env.process_env()["PYTHONPATH"].split(os.pathsep)[:2] == [
        str(paths.backends_dir() / "wav2lip"),
        str(paths.backends_dir() / "common"),
    ]
    proc = run_cli("env", "status", "wav2lip")
    assert "external" in proc.stdout.decode()
