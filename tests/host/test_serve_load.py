"""A bounded load test of ``lipsync serve`` on loopback: 50 concurrent submissions, 2 warm workers.

Every job must end ``ok`` or with a stable error code, each output must be the one its submission asked
for (each job picks its own frame rate, so a mixed-up output shows), and the server's memory must stay
flat across the run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from batch_support import short_speech, silent_wav
from lipsync_kit.probe import probe
from media import ffmpeg
from serve_support import FAST, Server, submit

pytestmark = pytest.mark.slow

JOBS = 50
SILENT_EVERY = 10  # every 10th job sends digital silence: the worker refuses it as silent_audio


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_fifty_concurrent_jobs_on_two_workers(
    tmp_path: Path, standin_checkpoints: dict[str, Path], face_image: Path
) -> None:
    media = tmp_path / "media"
    speech = media / "short.wav"
    ffmpeg("-i", str(short_speech(media)), "-t", "0.3", str(speech))
    silence = silent_wav(media / "silence.wav", seconds=0.3)
    weights = {
        "checkpoint": str(standin_checkpoints["generator"]),
        "detector_checkpoint": str(standin_checkpoints["detector"]),
        "box": FAST["box"],
    }
    allowed = f"--allow-paths={standin_checkpoints['generator'].parent}"
    with Server(tmp_path / "home", allowed, "--workers", "2") as server, server.client() as http:
        assert server.proc is not None
        warm = submit(http, face_image, speech, {**weights, "fps": 5}).json()
        while http.get(f"/v1/jobs/{warm['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.2)
        rss_before = _rss_kib(server.proc.pid)

        def one(i: int) -> tuple[int, dict]:
            audio = silence if i % SILENT_EVERY == 0 else speech
            with server.client() as client:
                response = submit(client, face_image, audio, {**weights, "fps": 4 + i % 6})
            assert response.status_code == 201, response.text
            return i, response.json()

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            submitted = dict(pool.map(one, range(JOBS)))
        assert len({job["id"] for job in submitted.values()}) == JOBS
        while True:
            jobs = {job["id"]: job for job in http.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
            if all(jobs[job["id"]]["status"] not in ("queued", "running") for job in submitted.values()):
                break
            assert time.monotonic() - started < 900, "the jobs did not end"
            time.sleep(0.5)
        assert len(_children(server.proc.pid)) <= 2  # two warm workers, no leaked processes

        pids = set()
        for i, job in submitted.items():
            done = jobs[job["id"]]
            if i % SILENT_EVERY == 0:
                assert (done["status"], done["error"]["code"]) == ("error", "silent_audio"), done
                continue
            assert done["status"] == "ok", done
            pids.add(done["result"]["worker_pid"])
            out = tmp_path / "out" / f"{i}.mp4"
            out.parent.mkdir(exist_ok=True)
            out.write_bytes(http.get(done["output_url"]).content)
            info = probe(out)
            assert info.fps == 4 + i % 6 == done["result"]["fps"]  # its own output, not a neighbour's
            assert info.video_codec == "h264" and info.audio_codec == "aac"
        assert len(pids) == 2  # both workers took jobs
        growth_mib = (_rss_kib(server.proc.pid) - rss_before) / 1024
        assert growth_mib < 40, f"the server grew by {growth_mib:.1f} MiB over {JOBS} jobs"
