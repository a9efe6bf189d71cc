"""``lipsync batch`` end to end: real envs, real worker subprocesses, real ffmpeg, stand-in weights.

Warm workers (one start and one model load per model), failure isolation, a killed worker replaced,
and an interrupted batch resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from batch_support import (
    FAST,
    FIXED_BOX,
    batch_argv,
    jobs_and_summary,
    json_lines,
    leftovers,
    read_results,
    short_speech,
    silent_wav,
    wait_for,
    write_manifest,
)
from lipsync_kit.probe import probe
from media import decode_frames, ffmpeg

from lipsync_cli.catalogue import get_model

pytestmark = pytest.mark.slow

# The models each batch test renders together.
MODEL_SETS = [pytest.param(("wav2lip", "sadtalker"), id="two-models")]
FPS = {"wav2lip": FAST["fps"], "sadtalker": 25}  # SadTalker always renders 25 fps


@pytest.fixture
def standin_options(standin_checkpoints: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per model: the options that point it at stand-in weights."""
    return {
        "wav2lip": {
            "checkpoint": str(standin_checkpoints["generator"]),
            "detector_checkpoint": str(standin_checkpoints["detector"]),
        },
    }


@pytest.fixture
def two_model_options(standin_options, sadtalker_standins: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Adds SadTalker on stand-ins, in resize mode: the 256 px test face needs no detection then."""
    weights = sadtalker_standins
    return {
        **standin_options,
        "sadtalker": {
            "checkpoint": str(weights["bundle"]),
            "mapping_checkpoint": str(weights["mapping_crop"]),
            "detector_checkpoint": str(weights["detector"]),
            "landmark_checkpoint": str(weights["landmarks"]),
            "preprocess": "resize",
        },
    }


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    return short_speech(tmp_path / "media")


def _job(job_id: str, model: str, face: Path, audio: Path, options: dict[str, Any], **extra) -> dict:
    return {
        "id": job_id,
        "model": model,
        "image": str(face),
        "audio": str(audio.relative_to(audio.parents[1])),  # relative: resolved against the manifest folder
        "output": f"out/{job_id}.mp4",
        "options": {**options, **FAST},
        **extra,
    }


def _assert_decodes(record: dict[str, Any]) -> None:
    info = probe(Path(record["output"]))
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.fps == FPS[record["model"]]
    assert len(decode_frames(Path(record["output"]), 256, 256)) == record["frames"] > 0


@pytest.mark.parametrize("models", MODEL_SETS)
def test_each_model_renders_all_its_jobs_on_one_warm_worker(
    models: tuple[str, ...], two_model_options, face_image: Path, speech: Path, tmp_path: Path
) -> None:
    silent = silent_wav(speech.parent / "silent.wav")
    # SadTalker renders ~10 s per frame on a CPU: give it 3 frames of the speech.
    clipped = speech.parent / "clip.wav"
    ffmpeg("-i", str(speech), "-ss", "0.2", "-t", "0.12", str(clipped))
    lines: list[dict | str] = []
    for model in models:
        audio, options = (clipped if model == "sadtalker" else speech), two_model_options[model]
        lines.append(_job(f"{model}-0", model, face_image, audio, options, seed=11))
        lines.append(_job(f"{model}-bad-input", model, face_image, silent, options))
        lines.append(_job(f"{model}-1", model, face_image, audio, options))
    lines.append('{"id": "broken", "image": ')  # a bad line
    manifest = write_manifest(tmp_path / "jobs.jsonl", lines)
    results = tmp_path / "results.jsonl"
    proc = subprocess.run(
        batch_argv(manifest, "--device", "cpu", "--workers", "1", "--json", "--results", results),
        capture_output=True,
        timeout=1200,
    )
    assert proc.returncode == 1, proc.stderr.decode()  # some jobs failed
    jobs, summary = jobs_and_summary(proc.stdout)

    for model in models:
        good = [jobs[f"{model}-0"], jobs[f"{model}-1"]]
        assert [r["status"] for r in good] == ["ok", "ok"], good
        # One worker rendered every job of the model, the bad one in between included …
        assert len({r["worker"]["pid"] for r in good}) == 1
        assert summary["worker_starts"][get_model(model).backend] == 1
        # … and loaded its models for the first job only.
        assert good[0]["worker"]["model_loads"] == good[1]["worker"]["model_loads"] >= 1
        assert good[1]["timings"]["model_load"] < good[0]["timings"]["model_load"]
        assert good[0]["seed"] == 11
        if model == "sadtalker":  # it samples: an unseeded job records the fresh seed it used
            assert isinstance(good[1]["seed"], int)
        else:
            assert good[1]["seed"] is None
        assert good[0]["backend_version"] and good[0]["line"] < good[1]["line"]
        for record in good:
            _assert_decodes(record)
        bad = jobs[f"{model}-bad-input"]
        assert (bad["status"], bad["error"]["code"]) == ("error", "silent_audio")
        assert not Path(bad["output"]).exists()

    broken = jobs[f"line:{len(lines)}"]
    assert broken["error"]["code"] == "bad_input" and broken["error"]["message"].startswith(
        f"line {len(lines)}:"
    )
    assert summary["ok"] == 2 * len(models) and summary["error"] == len(models) + 1
    assert leftovers(tmp_path / "out") == []
    assert read_results(results) == json_lines(proc.stdout)[:-1]  # the same records, summary aside


def _three_jobs(standin_options, face_image: Path, speech: Path, tmp_path: Path) -> Path:
    options = {**standin_options["wav2lip"], **FIXED_BOX}
    lines = [_job(name, "wav2lip", face_image, speech, options) for name in ("a", "b", "c")]
    return write_manifest(tmp_path / "jobs.jsonl", lines)


def _start(manifest: Path, results: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        batch_argv(manifest, "--device", "cpu", "--workers", "1", "--results", results, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell's background jobs inherit SIGINT ignored; give the CLI the default a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _first_ok(results: Path) -> dict[str, Any] | None:
    return next((r for r in read_results(results) if r["status"] == "ok"), None)


def test_a_killed_worker_is_replaced_and_the_batch_goes_on(
    standin_options, face_image: Path, speech: Path, tmp_path: Path
) -> None:
    manifest = _three_jobs(standin_options, face_image, speech, tmp_path)
    results = tmp_path / "results.jsonl"
    proc = _start(manifest, results, "--json")
    wait_for(lambda: _first_ok(results) is not None, 600, proc)
    first = _first_ok(results)
    assert first is not None and first["id"] == "a"
    os.kill(first["worker"]["pid"], signal.SIGKILL)  # dies while job b renders
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err.decode()
    jobs, summary = jobs_and_summary(out)
    assert (jobs["b"]["status"], jobs["b"]["error"]["code"]) == ("error", "worker_crashed")
    assert "full log:" in jobs["b"]["error"]["hint"]
    assert jobs["c"]["status"] == "ok" and jobs["c"]["worker"]["pid"] != first["worker"]["pid"]
    assert summary["worker_starts"] == {"wav2lip": 2}
    assert b"crashed on b" in err
    _assert_decodes(jobs["c"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "c.mp4"]  # no partial file of b


def test_an_interrupted_batch_resumes_with_only_what_is_missing(
    standin_options, face_image: Path, speech: Path, tmp_path: Path
) -> None:
    manifest = _three_jobs(standin_options, face_image, speech, tmp_path)
    results = tmp_path / "results.jsonl"
    proc = _start(manifest, results)
    wait_for(lambda: _first_ok(results) is not None, 600, proc)
    proc.send_signal(signal.SIGINT)  # job b is rendering now
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"--resume" in err
    statuses = {r["id"]: r["status"] for r in read_results(results)}
    assert statuses["a"] == "ok" and statuses.get("b") != "ok" and "c" not in statuses
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4"]  # nothing partial

    def resume() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        done = subprocess.run(
            batch_argv(manifest, "--device", "cpu", "--results", results, "--resume", "--json"),
            capture_output=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stderr.decode()
        return jobs_and_summary(done.stdout)

    jobs, summary = resume()
    assert {k: r["status"] for k, r in jobs.items()} == {"a": "skipped", "b": "ok", "c": "ok"}
    assert summary["worker_starts"] == {"wav2lip": 1}
    for job_id in "bc":
        _assert_decodes(jobs[job_id])

    jobs, summary = resume()  # everything is done: no worker starts at all
    assert {r["status"] for r in jobs.values()} == {"skipped"} and summary["worker_starts"] == {}

    # A changed option re-renders that job alone, over the output this batch wrote before.
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[2]["options"]["paste"] = "exact"
    write_manifest(manifest, lines)
    before = (tmp_path / "out" / "c.mp4").stat().st_mtime_ns
    jobs, _ = resume()
    assert {k: r["status"] for k, r in jobs.items()} == {"a": "skipped", "b": "skipped", "c": "ok"}
    assert (tmp_path / "out" / "c.mp4").stat().st_mtime_ns != before
    assert leftovers(tmp_path / "out") == []


def test_existing_outputs_the_batch_did_not_write_are_kept(
    standin_options, face_image: Path, speech: Path, tmp_path: Path
) -> None:
    manifest = _three_jobs(standin_options, face_image, speech, tmp_path)
    (tmp_path / "out").mkdir()
    for name in "abc":
        (tmp_path / "out" / f"{name}.mp4").write_bytes(b"keep me")
    done = subprocess.run(
        batch_argv(manifest, "--device", "cpu", "--json", "--results", tmp_path / "r.jsonl", "--resume"),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 1
    jobs, summary = jobs_and_summary(done.stdout)
    assert {r["error"]["code"] for r in jobs.values()} == {"output_exists"}
    assert summary["worker_starts"] == {}
    assert all((tmp_path / "out" / f"{n}.mp4").read_bytes() == b"keep me" for n in "abc")
