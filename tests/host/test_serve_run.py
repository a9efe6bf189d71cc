"""``lipsync run --server`` and ``lipsync batch --server`` against a real server on loopback.

Through a server a run writes the same bytes as a standalone run, reports the same record and exits with
the same statuses; with no server answering it renders on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from batch_support import jobs_and_summary, short_speech, silent_wav, write_manifest
from serve_support import FAST, Server, free_port

pytestmark = pytest.mark.slow

IDLE_S = 30  # the server stops a worker idle this long
FLAGS = ("--fps", str(FAST["fps"]), "--box", *map(str, FAST["box"]))


@pytest.fixture
def server(tmp_path: Path, standin_checkpoints: dict[str, Path]) -> Iterator[Server]:
    allowed = f"--allow-paths={standin_checkpoints['generator'].parent}"
    with Server(tmp_path / "server-home", allowed, "--idle-timeout", str(IDLE_S)) as running:
        yield running


def test_run_through_a_server_matches_a_standalone_run(
    server, render_wav2lip, run_cli, standin_checkpoints, face_image: Path, tmp_path: Path
) -> None:
    speech = short_speech(tmp_path / "media")
    nobody = f"http://127.0.0.1:{free_port()}"
    alone = render_wav2lip(face_image, speech, tmp_path / "alone.mp4", *FLAGS, "--json", "--server", nobody)
    assert alone.returncode == 0, alone.stderr.decode()
    assert f"no lipsync server answers at {nobody}; rendering here" in alone.stderr.decode()
    assert "server" not in json.loads(alone.stdout)

    served = render_wav2lip(
        face_image, speech, tmp_path / "served.mp4", *FLAGS, "--json", "--server", server.url
    )
    assert served.returncode == 0, served.stderr.decode()
    assert (tmp_path / "served.mp4").read_bytes() == (tmp_path / "alone.mp4").read_bytes()
    record, local = json.loads(served.stdout), json.loads(alone.stdout)
    assert record["output"] == str(tmp_path / "served.mp4") and record["server"]["url"] == server.url
    for key in ("kind", "model", "frames", "fps", "duration", "face_box", "weights", "device"):
        assert record[key] == local[key], key
    assert not list(tmp_path.glob(".served.mp4.partial-*"))

    # Errors keep the CLI's codes and exit statuses, and leave no file.
    silent = silent_wav(tmp_path / "media" / "silence.wav")
    failed = run_cli(
        "run", "-m", "wav2lip", "-i", face_image, "-a", silent, "-o", tmp_path / "silent.mp4",
        "--device", "cpu", "--checkpoint", standin_checkpoints["generator"],
        "--detector-checkpoint", standin_checkpoints["detector"], *FLAGS, "--json",
        env={"LIPSYNC_SERVER": server.url},  # the variable instead of the flag
    )  # fmt: skip
    assert failed.returncode == 65, failed.stderr.decode()
    assert json.loads(failed.stdout)["code"] == "silent_audio"
    assert not (tmp_path / "silent.mp4").exists()
    exists = render_wav2lip(face_image, speech, tmp_path / "served.mp4", *FLAGS, "--server", server.url)
    assert exists.returncode == 73 and b"output_exists" in exists.stderr

    # lipsync batch --server: the manifest's jobs render on the server's warm worker.
    options = {
        "checkpoint": str(standin_checkpoints["generator"]),
        "detector_checkpoint": str(standin_checkpoints["detector"]),
        **FAST,
    }
    manifest = write_manifest(
        tmp_path / "jobs.jsonl",
        [
            {"id": "a", "model": "wav2lip", "image": str(face_image), "audio": str(speech),
             "output": "out/a.mp4", "options": options},
            {"id": "b", "model": "wav2lip", "image": str(face_image), "audio": str(silent),
             "output": "out/b.mp4", "options": options},
        ],
    )  # fmt: skip
    batch = run_cli("batch", manifest, "--json", "--server", server.url)
    assert batch.returncode == 1, batch.stderr.decode()
    jobs, summary = jobs_and_summary(batch.stdout)
    assert jobs["a"]["status"] == "ok" and jobs["a"]["output"] == str(tmp_path / "out" / "a.mp4")
    assert (jobs["b"]["status"], jobs["b"]["error"]["code"]) == ("error", "silent_audio")
    assert (tmp_path / "out" / "a.mp4").read_bytes() == (tmp_path / "alone.mp4").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4"]
    assert summary["ok"] == 1 and summary["error"] == 1

    # With nothing to do, the warm worker is stopped after the idle timeout.
    pid = jobs["a"]["worker"]["pid"]
    assert httpx.get(server.url + "/v1/ready").json()["workers"] == {"wav2lip": 1}
    deadline = time.monotonic() + IDLE_S + 60
    while httpx.get(server.url + "/v1/ready").json()["workers"] != {"wav2lip": 0}:
        assert time.monotonic() < deadline, "the idle worker was not stopped"
        time.sleep(1)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
