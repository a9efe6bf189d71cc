"""The server's job store and settings without a server: recovery after a crash, pruning, bind rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lipsync_cli.errors import LipsyncError
from lipsync_cli.serve.config import ServeConfig, is_loopback
from lipsync_cli.serve.service import Service
from lipsync_cli.serve.store import JobStore


def test_jobs_left_active_by_a_dead_server_come_back_interrupted(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    for job_id in ("done", "running", "queued"):
        store.add(job_id, "wav2lip", {"model": "wav2lip"})
    assert store.started("done") and store.started("running")
    assert store.finish("done", "ok", result={"ok": True, "frames": 7})
    assert not store.finish("done", "error", error={"code": "internal"})  # an ended job stays as it ended
    store.close()

    again = JobStore(tmp_path / "jobs.sqlite3")
    assert sorted(again.recover()) == ["queued", "running"]
    jobs = {job["id"]: job for job in again.recent()}
    assert jobs["done"]["status"] == "ok" and jobs["done"]["result"] == {"ok": True, "frames": 7}
    for job_id in ("queued", "running"):
        assert jobs[job_id]["status"] == "interrupted"
        assert jobs[job_id]["error"]["code"] == "interrupted"
    assert not again.started("queued")  # an interrupted job never runs


def test_pruning_takes_old_jobs_and_those_over_the_count(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    for n in range(5):
        store.add(f"job{n}", "wav2lip", {})
        store.finish(f"job{n}", "ok", result={})
        time.sleep(0.01)
    store.add("active", "wav2lip", {})
    assert store.prunable(older_than=0, keep=3) == ["job0", "job1"]
    assert store.prunable(older_than=time.time() + 1, keep=100) == [f"job{n}" for n in range(5)]
    store.delete(["job0", "job1"])
    assert [job["id"] for job in store.recent()] == ["active", "job4", "job3", "job2"]


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    with pytest.raises(LipsyncError) as refused:
        ServeConfig(host="0.0.0.0", home=tmp_path)
    assert refused.value.code == "bad_option"
    assert ServeConfig(host="0.0.0.0", token="t", home=tmp_path).token == "t"


def test_pruning_keeps_the_job_folders_under_the_storage_limit(tmp_path: Path) -> None:
    config = ServeConfig(home=tmp_path / "serve", max_storage_bytes=2500)
    service = Service(config)
    for _ in range(4):
        job_id, folder = service.new_job_dir()
        (folder / "output.mp4").write_bytes(b"x" * 1000)
        service.store.add(job_id, "wav2lip", {})
        service.store.finish(job_id, "ok", result={})
        time.sleep(0.01)
    newest = [job["id"] for job in service.store.recent()]
    gone = service.prune()
    assert sorted(gone) == sorted(newest[2:])  # the two oldest go; 2000 bytes stay
    assert sorted(p.name for p in config.jobs_dir.iterdir()) == sorted(newest[:2])
    assert [job["id"] for job in service.store.recent()] == newest[:2]
    service.shutdown(timeout=0)
