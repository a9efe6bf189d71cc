"""The worker protocol against the real wav2lip worker: ready, ping, warm reuse, crashes, interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from lipsync_kit import protocol
from media import speech

from lipsync_cli.envs import BackendEnv
from lipsync_cli.errors import LipsyncError
from lipsync_cli.model_options import backend_options
from lipsync_cli.worker import WorkerClient

pytestmark = pytest.mark.slow


def _params(checkpoints, face: Path, audio: Path, output: Path, **extra) -> dict:
    return {
        "face": str(face),
        "audio": str(audio),
        "output": str(output),
        "format": "mp4",
        "overwrite": False,
        "weights": {"checkpoint": str(checkpoints["generator"]), "detector": str(checkpoints["detector"])},
        **extra,
    }


@pytest.fixture
def worker(wav2lip_python, tmp_path: Path):
    client = WorkerClient(BackendEnv.named("wav2lip"), device="cpu", log_dir=tmp_path / "logs")
    yield client
    client.kill()


def test_ready_ping_and_one_model_load_for_many_renders(
    worker, standin_checkpoints, face_image, speech_wav, tmp_path: Path
) -> None:
    ready = worker.start()
    assert (ready.backend, ready.device) == ("wav2lip", "cpu") and ready.pid > 0
    assert "mp4" in ready.capabilities["formats"]
    # The worker checks requests against the same declarations the host builds its flags from.
    assert ready.capabilities["options"] == [option.name for option in backend_options("wav2lip")]
    assert worker.ping() < 5
    stages: list[str] = []
    first = worker.render(
        _params(standin_checkpoints, face_image, speech_wav, tmp_path / "a.mp4"),
        lambda m: stages.append(m.stage) if isinstance(m, protocol.Progress) else None,
    )
    second = worker.render(_params(standin_checkpoints, face_image, speech_wav, tmp_path / "b.mp4"))
    assert first.stats["model_loads"] == second.stats["model_loads"] == 2  # generator + detector, loaded once
    assert "lip-syncing" in stages and "detecting faces" in stages
    assert (tmp_path / "a.mp4").stat().st_size > 0 and (tmp_path / "b.mp4").stat().st_size > 0


def test_a_bad_request_does_not_end_the_worker(
    worker, standin_checkpoints, face_image, speech_wav, tmp_path: Path
) -> None:
    worker.start()
    with pytest.raises(LipsyncError) as bad:
        worker.render(_params(standin_checkpoints, tmp_path / "missing.png", speech_wav, tmp_path / "x.mp4"))
    assert bad.value.code == "bad_input"
    assert worker.render(_params(standin_checkpoints, face_image, speech_wav, tmp_path / "ok.mp4")).output


def test_killed_worker_is_reported_as_a_crash_with_its_log(
    worker, standin_checkpoints, face_image, speech_wav, tmp_path: Path
) -> None:
    ready = worker.start()
    os.kill(ready.pid, signal.SIGKILL)
    with pytest.raises(LipsyncError) as crash:
        worker.render(_params(standin_checkpoints, face_image, speech_wav, tmp_path / "x.mp4"))
    assert crash.value.code == "worker_crashed"
    assert str(worker.log_path) in (crash.value.hint or "")
    assert not (tmp_path / "x.mp4").exists()


@pytest.fixture(scope="module")
def long_speech() -> Path:
    """5.3 s of speech: long enough to keep the renderer busy for a while, so it can be stopped."""
    return speech("long")


def test_terminating_mid_render_leaves_no_partial_output(
    worker, standin_checkpoints, face_image, long_speech, tmp_path: Path
) -> None:
    ready = worker.start()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rendering = threading.Event()
    outcome: list[BaseException] = []

    def on_event(message: protocol.Message) -> None:
        if isinstance(message, protocol.Progress) and message.stage == "lip-syncing" and message.done > 0:
            rendering.set()

    def target() -> None:
        try:
            worker.render(
                _params(standin_checkpoints, face_image, long_speech, out_dir / "out.mp4", batch_size=1),
                on_event,
            )
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    assert rendering.wait(120)
    os.kill(ready.pid, signal.SIGTERM)
    thread.join(60)
    assert outcome and isinstance(outcome[0], LipsyncError) and outcome[0].code == "worker_crashed"
    assert list(out_dir.iterdir()) == []


def test_ctrl_c_on_the_cli_stops_the_worker_and_leaves_no_output(
    standin_checkpoints, face_image, long_speech, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lipsync_cli",
            "run",
            "-m",
            "wav2lip",
            "-i",
            str(face_image),
            "-a",
            str(long_speech),
            "-o",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "1",
            "--checkpoint",
            str(standin_checkpoints["generator"]),
            "--detector-checkpoint",
            str(standin_checkpoints["detector"]),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        # A shell's background jobs inherit SIGINT ignored; give the CLI the default a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "lip-syncing" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.glob("*out*")) == [] and list(tmp_path.glob(".*")) == []
