"""``lipsync batch --ray local``: the same batch through Ray actors on a private loopback Ray instance."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from batch_support import (
    FAST,
    FIXED_BOX,
    batch_argv,
    jobs_and_summary,
    leftovers,
    short_speech,
    silent_wav,
    write_manifest,
)
from lipsync_kit.probe import probe
from media import decode_frames

# tests/run installs the extra (uv sync --extra ray); Ray ships wheels for every Python the host supports.
pytest.importorskip("ray", reason="the ray extra is not installed: uv sync --group dev --extra ray")

pytestmark = pytest.mark.slow


def test_batch_on_a_local_ray_runtime(standin_checkpoints, face_image: Path, tmp_path: Path) -> None:
    speech = short_speech(tmp_path / "media")
    weights = {
        "checkpoint": str(standin_checkpoints["generator"]),
        "detector_checkpoint": str(standin_checkpoints["detector"]),
    }
    lines = [
        {"id": "detect", "options": {**weights, **FAST}, "seed": 5},
        {"id": "boxed", "options": {**weights, **FAST, **FIXED_BOX}},
        {"id": "silent", "audio": "media/silent.wav", "options": {**weights, **FAST}},
    ]
    silent_wav(speech.parent / "silent.wav")
    manifest = write_manifest(
        tmp_path / "jobs.jsonl",
        [
            {"image": str(face_image), "audio": "media/hi.wav", "output": f"out/{e['id']}.mp4", **e}
            for e in lines
        ],
    )
    results = tmp_path / "results.jsonl"
    argv = batch_argv(manifest, "-m", "wav2lip", "--ray", "local", "--device", "cpu", "--workers", "1")
    proc = subprocess.run([*argv, "--json", "--results", str(results)], capture_output=True, timeout=1200)
    assert proc.returncode == 1, proc.stderr.decode()  # the silent job fails alone
    jobs, summary = jobs_and_summary(proc.stdout)
    ok = [jobs["detect"], jobs["boxed"]]
    assert [r["status"] for r in ok] == ["ok", "ok"], ok
    assert jobs["silent"]["error"]["code"] == "silent_audio"
    # One actor, one warm worker: one start, and the models loaded for the first job only.
    assert summary["worker_starts"] == {"wav2lip": 1}
    assert len({r["worker"]["pid"] for r in ok}) == 1
    assert ok[0]["worker"]["model_loads"] == ok[1]["worker"]["model_loads"] == 2
    assert ok[0]["seed"] == 5
    for record in ok:
        out = Path(record["output"])
        info = probe(out)
        assert info.video_codec == "h264" and info.audio_codec == "aac" and info.fps == 10
        assert len(decode_frames(out, 256, 256)) == record["frames"] > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["boxed.mp4", "detect.mp4"]
    assert leftovers(tmp_path / "out") == []
    assert [json.loads(line)["id"] for line in results.read_text().splitlines()] == [
        r["id"] for r in jobs.values()
    ]
