"""``lipsync serve`` end to end: a real server on loopback, real worker subprocesses, stand-in weights.

One server renders every job of this module on one warm worker: submit → events → download (ranges), a
killed worker failing only its job, cancel, bad uploads with the CLI's codes, paths outside --allow-paths;
then SIGTERM drains it and a restart on the same home finds every job where it was left.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from batch_support import short_speech, silent_wav
from lipsync_kit.probe import probe
from media import decode_audio, decode_frames
from serve_support import FAST, Server, ended, events, submit, wait_job

pytestmark = pytest.mark.slow

MAX_UPLOAD_MB = 4
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-media")
    short_speech(folder)
    silent_wav(folder / "silence.wav")
    (folder / "notes.txt").write_text("not a picture, not a sound\n")
    (folder / "big.bin").write_bytes(os.urandom((MAX_UPLOAD_MB + 1) * 2**20))
    shutil.copy(DATA_DIR / "astronaut_256.jpg", folder / "face.jpg")
    return folder


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, standin_checkpoints: dict[str, Path], media: Path
) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve-home")
    allowed = (media, standin_checkpoints["generator"].parent)
    args = [f"--allow-paths={folder}" for folder in allowed]
    with Server(home, *args, "--max-upload-mb", str(MAX_UPLOAD_MB), "--drain-timeout", "300") as running:
        yield running


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def weights(standin_checkpoints: dict[str, Path]) -> dict[str, Any]:
    return {
        "checkpoint": str(standin_checkpoints["generator"]),
        "detector_checkpoint": str(standin_checkpoints["detector"]),
    }


@pytest.fixture(scope="module")
def first_job(http, face_image: Path, media: Path, weights) -> dict[str, Any]:
    """One job rendered through the API, with the events it sent."""
    response = submit(http, face_image, media / "hi.wav", {**weights, **FAST})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and response.headers["location"] == f"/v1/jobs/{job['id']}"
    return {"job": job, "events": events(http, job["id"])}


def test_a_job_reports_progress_and_its_video_downloads_with_ranges(
    http, first_job, media: Path, tmp_path: Path
) -> None:
    names = [name for name, _ in first_job["events"]]
    assert names[-1] == "end" and set(names[:-1]) == {"job"}
    stages = {job["progress"]["stage"] for _, job in first_job["events"] if job["progress"]}
    assert "lip-syncing" in stages
    final = first_job["events"][-1][1]
    assert final["status"] == "ok" and final["error"] is None
    record = final["result"]
    assert record["model"] == "wav2lip" and record["device"] == "cpu" and record["fps"] == 10
    assert record["weights"]["checkpoint"]["sha256"] == "custom"
    assert {"worker_start", "inference", "encode", "total"} <= set(record["seconds"])
    assert final["queued_seconds"] >= 0 and final["run_seconds"] > 0

    whole = http.get(final["output_url"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    video = tmp_path / "out.mp4"
    video.write_bytes(whole.content)
    info = probe(video)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert len(decode_frames(video, 256, 256)) == record["frames"] > 0
    audio_seconds = len(decode_audio(media / "hi.wav")) / 16000
    assert abs(len(decode_audio(video)) / 16000 - audio_seconds) < 0.05

    part = http.get(final["output_url"], headers={"range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole.content)}"
    assert part.content == whole.content[100:1100]
    tail = http.get(final["output_url"], headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]

    listed = http.get("/v1/jobs").json()["jobs"]
    assert final["id"] in [job["id"] for job in listed]


def test_a_killed_worker_fails_only_its_job(http, first_job, face_image: Path, media: Path, weights) -> None:
    slow = {**weights, **FAST, "fps": 25}  # more frames: still rendering when its worker is killed
    doomed = submit(http, face_image, media / "hi.wav", slow).json()
    after = submit(http, face_image, media / "hi.wav", {**weights, **FAST}).json()
    running = wait_job(http, doomed["id"], lambda j: j["status"] != "queued")
    assert running["status"] == "running"
    first_pid = first_job["events"][-1][1]["result"]["worker_pid"]  # the warm worker takes it
    os.kill(first_pid, signal.SIGKILL)

    failed = wait_job(http, doomed["id"], ended)
    assert (failed["status"], failed["error"]["code"]) == ("error", "worker_crashed")
    assert "full log:" in failed["error"]["hint"]
    assert failed["output_url"] is None
    done = wait_job(http, after["id"], ended)
    assert done["status"] == "ok", done["error"]
    assert done["result"]["worker_pid"] != first_pid
    assert http.get(f"/v1/jobs/{doomed['id']}/output").json()["code"] == "not_found"


def test_cancel_stops_the_render_and_leaves_no_file(http, server, face_image: Path, media: Path, weights):
    job = http.post(
        "/v1/jobs",
        json={
            "model": "wav2lip",
            "image": str(face_image),
            "audio": "hi.wav",
            "options": {**weights, "fps": 25},
        },
    )
    assert job.status_code == 403 and job.json()["code"] == "forbidden_path"  # the face is not allowed
    job = http.post(
        "/v1/jobs",
        json={"model": "wav2lip", "image": "face.jpg", "audio": "hi.wav", "options": {**weights, "fps": 25}},
    ).json()
    wait_job(http, job["id"], lambda j: j["progress"] is not None or ended(j))
    cancelled = http.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert (cancelled["status"], cancelled["error"]["code"]) == ("cancelled", "interrupted")
    assert list((server.home / "serve" / "jobs" / job["id"]).iterdir()) == []
    assert http.get(f"/v1/jobs/{job['id']}/output").status_code == 404
    assert http.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # stays cancelled


@pytest.mark.parametrize(
    ("image", "audio", "fields", "status", "code"),
    [
        ("notes.txt", "hi.wav", {}, 422, "bad_input"),
        ("FACE", "notes.txt", {}, 422, "bad_audio"),
        ("FACE", "FACE", {}, 422, "bad_audio"),  # a picture has no audio stream, whatever its name
        ("FACE", "hi.wav", {"model": "wav3lip"}, 422, "unknown_model"),
        ("FACE", "hi.wav", {"options": '{"pads": [1, 2]}'}, 422, "bad_option"),
        ("FACE", "hi.wav", {"options": '{"preprocess": "crop"}'}, 422, "bad_option"),
        ("FACE", "hi.wav", {"options": "{not json"}, 422, "bad_option"),
        ("FACE", "hi.wav", {"format": "avi"}, 422, "bad_option"),
        ("FACE", "hi.wav", {"device": "cuda"}, 422, "bad_option"),
        ("FACE", "big.bin", {}, 413, "too_large"),
    ],
)
def test_bad_submissions_are_refused_with_the_cli_codes(
    http, server, face_image: Path, media: Path, image, audio, fields, status, code
) -> None:
    before = set((server.home / "serve" / "jobs").iterdir())
    face = face_image if image == "FACE" else media / image
    speech = face_image if audio == "FACE" else media / audio
    model = fields.pop("model", "wav2lip")
    options = fields.pop("options", "{}")
    with open(face, "rb") as a, open(speech, "rb") as b:
        response = http.post(
            "/v1/jobs",
            data={"model": model, "options": options, **fields},
            files={"image": ("face.jpg", a), "audio": ("speech.wav", b)},
        )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["code"] == code and body["message"]
    assert str(server.home) not in body["message"]  # the uploads are named as the client sent them
    if code in ("bad_input", "bad_audio"):
        assert "the uploaded" in body["message"]
    assert set((server.home / "serve" / "jobs").iterdir()) == before  # nothing kept of a refused upload


def test_an_upload_without_a_length_is_stopped_at_the_limit(http, server) -> None:
    """A chunked body (no Content-Length) is counted as it streams to disk and cut off at the limit."""
    boundary = "lipsync-test-boundary"
    before = set((server.home / "serve" / "jobs").iterdir())

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwav2lip\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        ).encode()
        for _ in range(MAX_UPLOAD_MB + 2):
            yield b"\0" * 2**20

    response = http.post(
        "/v1/jobs", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert set((server.home / "serve" / "jobs").iterdir()) == before


def test_an_upload_without_its_files_is_refused(http) -> None:
    response = http.post("/v1/jobs", data={"model": "wav2lip"}, files={"other": ("x", b"x")})
    assert response.status_code == 422 and response.json()["code"] == "bad_option"
    response = http.post("/v1/jobs", data={"model": "wav2lip"}, files={"audio": ("a.wav", b"RIFF")})
    assert response.status_code == 422 and response.json()["code"] == "bad_input"


def test_paths_outside_allow_paths_and_traversal_are_refused(
    http, media: Path, tmp_path: Path, weights
) -> None:
    outside = tmp_path / "secret.wav"
    outside.write_bytes((media / "hi.wav").read_bytes())
    (media / "link.wav").symlink_to(outside)
    attempts = [
        {"image": "face.jpg", "audio": "../" * 12 + "etc/passwd"},
        {"image": "face.jpg", "audio": f"{media}/../{outside.parent.name}/secret.wav"},
        {"image": "face.jpg", "audio": str(outside)},
        {"image": "face.jpg", "audio": "link.wav"},  # a link out of the folder
        {"image": "face.jpg", "audio": "hi.wav", "options": {"checkpoint": str(outside)}},
    ]
    for body in attempts:
        response = http.post("/v1/jobs", json={"model": "wav2lip", **body})
        assert response.status_code == 403, (body, response.text)
        assert response.json()["code"] == "forbidden_path"


def test_models_health_readiness_and_docs(http) -> None:
    assert http.get("/v1/health").json() == {"ok": True, "version": http.get("/v1/health").json()["version"]}
    ready = http.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    body = http.get("/v1/models").json()
    models = {model["name"]: model for model in body["models"]}
    assert set(models) == {"wav2lip", "sadtalker", "sadtalker-still", "musetalk"}
    musetalk = {option["name"]: option for option in models["musetalk"]["options"]}
    assert musetalk["duration_mode"]["default"] == "pingpong" and musetalk["parsing_mode"]["default"] == "jaw"
    wav2lip = {option["name"]: option for option in models["wav2lip"]["options"]}
    assert set(wav2lip["paste"]["choices"]) == {"exact", "blend"} and wav2lip["paste"]["default"] == "blend"
    assert "preprocess" not in wav2lip and models["wav2lip"]["env"] == "ready"
    assert body["server"]["allow_paths"] is True and body["server"]["device"] == "cpu"
    schema = http.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/output", "/v1/models"} <= set(
        schema["paths"]
    )
    assert http.get("/docs").status_code == 200
    assert http.get("/v1/jobs/nope").json()["code"] == "not_found"


def test_sigterm_drains_and_a_restart_keeps_every_job(
    server, http, first_job, face_image: Path, media: Path, weights
) -> None:
    running = submit(http, face_image, media / "hi.wav", {**weights, **FAST}).json()
    queued = submit(http, face_image, media / "hi.wav", {**weights, **FAST}).json()
    wait_job(http, running["id"], lambda j: j["status"] != "queued")
    assert server.stop(signal.SIGTERM) == 0  # the running job finishes first
    first = first_job["events"][-1][1]

    with Server(server.home, *server.args) as again:
        with again.client() as client:
            jobs = {job["id"]: job for job in client.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
            assert jobs[running["id"]]["status"] == "ok"
            assert (jobs[queued["id"]]["status"], jobs[queued["id"]]["error"]["code"]) == (
                "interrupted",
                "interrupted",
            )
            assert jobs[first["id"]]["result"] == first["result"]
            assert client.get(first["output_url"]).status_code == 200

            # A server that dies (SIGKILL) with a job running: the next start marks it interrupted.
            crashed = submit(client, face_image, media / "hi.wav", {**weights, **FAST}).json()
            wait_job(client, crashed["id"], lambda j: j["status"] != "queued")
        again.stop(signal.SIGKILL)
    with Server(server.home, *server.args) as third, third.client() as client:
        job = client.get(f"/v1/jobs/{crashed['id']}").json()
        assert (job["status"], job["error"]["code"], job["output_url"]) == (
            "interrupted",
            "interrupted",
            None,
        )
        assert "marked interrupted" in third.log_text()
