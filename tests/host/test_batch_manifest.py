"""The batch manifest and command line without rendering: line checks, defaults, shards, option schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from batch_support import batch_argv, jobs_and_summary, short_speech, write_manifest

from lipsync_cli.batch.manifest import Defaults, Job, LineError, parse_manifest
from lipsync_cli.batch.plan import Shard


@pytest.fixture
def media(tmp_path: Path, face_image: Path) -> Path:
    """A folder with a portrait, short speech and a file that is not audio."""
    folder = tmp_path / "media"
    short_speech(folder)
    (folder / "face.jpg").write_bytes(face_image.read_bytes())
    (folder / "noise.wav").write_text("not audio")
    return folder


def _batch(*args, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(batch_argv(*args), capture_output=True, cwd=cwd, input=stdin, timeout=300)


def test_check_names_every_bad_line_and_renders_nothing(media: Path, tmp_path: Path) -> None:
    good = {"id": "good", "image": "media/face.jpg", "audio": "media/hi.wav", "output": "out/good.mp4"}
    manifest = write_manifest(
        tmp_path / "jobs.jsonl",
        [
            good,  # 1
            "",  # 2: blank lines are allowed
            "{not json",  # 3
            "[1, 2]",  # 4
            {**good, "id": "", "output": "out/x.mp4"},  # 5
            {**good, "id": "extra", "output": "out/extra.mp4", "colour": "red"},  # 6
            {**good, "id": "model", "output": "out/model.mp4", "model": "nope"},  # 7
            {**good, "id": "opt", "output": "out/opt.mp4", "options": {"padz": [0, 0, 0, 0]}},  # 8
            {**good, "id": "pads", "output": "out/pads.mp4", "options": {"pads": [0, -1, 0, 0]}},  # 9
            {**good, "output": "out/again.mp4"},  # 10: duplicate id
            {**good, "id": "same-output"},  # 11: output of line 1
            {**good, "id": "no-image", "output": "out/ni.mp4", "image": "media/nope.jpg"},  # 12
            {**good, "id": "bad-audio", "output": "out/ba.mp4", "audio": "media/noise.wav"},  # 13
            {**good, "id": "avi", "output": "out/clip.avi"},  # 14
            {**good, "id": "seed", "output": "out/seed.mp4", "seed": "7"},  # 15
            {**good, "id": "stream", "output": "-"},  # 16
        ],
    )
    proc = _batch(manifest, "--check", "--json", "-m", "wav2lip", cwd=tmp_path)
    assert proc.returncode == 65, proc.stderr.decode()
    jobs, summary = jobs_and_summary(proc.stdout)
    found = {r["line"]: r["error"]["code"] for r in jobs.values()}
    assert found == {
        3: "bad_input",
        4: "bad_input",
        5: "bad_input",
        6: "bad_input",
        7: "unknown_model",
        8: "bad_option",
        9: "bad_option",
        10: "bad_input",
        11: "bad_option",
        12: "bad_input",
        13: "bad_audio",
        14: "bad_option",
        15: "bad_input",
        16: "bad_option",
    }
    for record in jobs.values():
        assert record["status"] == "error" and record["error"]["message"].startswith(
            f"line {record['line']}:"
        )
    assert "duplicate id 'good' (first on line 1)" in jobs["good"]["error"]["message"]
    assert "'padz'" in jobs["opt"]["error"]["message"] and "pads" in jobs["opt"]["error"]["hint"]
    assert "--pads must not be negative" in jobs["pads"]["error"]["message"]
    assert "also written by line 1" in jobs["same-output"]["error"]["message"]
    assert summary["pending"] == 1 and summary["ok"] == 0
    assert not (tmp_path / "out").exists()
    assert "line 13:" in proc.stderr.decode()


def test_paths_resolve_against_the_manifest_and_lines_override_command_line_defaults(
    media: Path, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"id": "a", "image": "face.jpg", "audio": "hi.wav"}),
        json.dumps(
            {
                "id": "b",
                "image": "face.jpg",
                "audio": "hi.wav",
                "output": "b.mkv",
                "seed": 3,
                "options": {"paste": "blend", "checkpoint": "wav2lip_gan", "detector_checkpoint": "s3fd.pth"},
            }
        ),
    ]
    defaults = Defaults(
        model="wav2lip", options={"paste": "exact", "fps": 10}, seed=7, output_dir=tmp_path / "renders"
    )
    a, b = parse_manifest(lines, media, defaults)
    assert isinstance(a, Job) and isinstance(b, Job)
    assert a.request.face == media / "face.jpg" and a.request.audio == media / "hi.wav"
    assert a.output == tmp_path / "renders" / "a.mp4" and a.request.output.format == "mp4"
    assert (a.request.seed, a.request.fps, a.request.options["paste"]) == (7, 10, "exact")
    assert a.request.options["pads"] == [0, 10, 0, 0]  # defaults come from the one option table
    assert a.request.weights == {}
    assert b.output == media / "b.mkv" and b.request.output.format == "mkv"
    assert (b.request.seed, b.request.fps, b.request.options["paste"]) == (3, 10, "blend")
    assert b.request.weights["checkpoint"] == "wav2lip_gan"  # a named checkpoint stays a name
    assert b.request.weights["detector_checkpoint"] == str(media / "s3fd.pth")


def test_manifest_from_stdin_resolves_against_the_working_directory(media: Path) -> None:
    line = {"id": "x", "image": "face.jpg", "audio": "hi.wav", "output": "x.mp4", "model": "wav2lip"}
    bad = {**line, "id": "y", "output": "y.mp4", "image": "missing.jpg"}
    proc = _batch(
        "-", "--check", "--json", cwd=media, stdin=(json.dumps(line) + "\n" + json.dumps(bad)).encode()
    )
    assert proc.returncode == 65, proc.stderr.decode()
    jobs, summary = jobs_and_summary(proc.stdout)
    assert list(jobs) == ["y"] and str(media / "missing.jpg") in jobs["y"]["error"]["message"]
    assert summary["pending"] == 1


def test_shards_partition_the_manifest_exactly(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"clip-{i:03d}", "image": "f.jpg", "audio": "a.wav"}) for i in range(60)]
    lines += ["{broken", json.dumps({"image": "no id"})]  # lines without an id shard by line number
    entries = parse_manifest(lines, tmp_path, Defaults(model="wav2lip", output_dir=tmp_path))
    assert sum(isinstance(e, LineError) for e in entries) == 2
    everything = sorted(e.line for e in entries)
    for count in (1, 2, 3, 7):
        shards = [[e.line for e in entries if Shard(i, count).owns(e)] for i in range(count)]
        assert sorted(line for shard in shards for line in shard) == everything
        if count > 1:
            assert all(shards), "every shard gets some of 62 lines"
    # The split depends on ids only: reordering the manifest keeps every job in its shard.
    shuffled = parse_manifest(
        list(reversed(lines[:60])), tmp_path, Defaults(model="wav2lip", output_dir=tmp_path)
    )
    assert {e.id for e in entries if Shard(1, 3).owns(e) and e.id} == {
        e.id for e in shuffled if Shard(1, 3).owns(e)
    }


def test_shards_through_the_command_line(media: Path, tmp_path: Path) -> None:
    lines = [{"id": f"j{i}", "image": "face.jpg", "audio": "hi.wav", "output": f"j{i}.mp4"} for i in range(9)]
    manifest = write_manifest(media / "jobs.jsonl", lines)
    pending = []
    for index in range(3):
        proc = _batch(manifest, "--check", "--json", "-m", "wav2lip", "--shard", f"{index}/3", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr.decode()
        pending.append(jobs_and_summary(proc.stdout)[1]["pending"])
    assert sum(pending) == 9
    proc = _batch(manifest, "--check", "--shard", "3/3", cwd=tmp_path)
    assert proc.returncode == 2 and b"bad_option" in proc.stderr and b"0 to 2" in proc.stderr


@pytest.mark.parametrize(
    ("args", "code", "status", "words"),
    [
        (["--resume"], "bad_option", 2, "--results"),
        (["-O", "padz=1"], "bad_option", 2, "'padz'"),
        (["-O", "pads=[0,-1,0,0]"], "bad_option", 2, "--pads must not be negative"),
        (["-O", "paste"], "bad_option", 2, "KEY=VALUE"),
        (["-m", "nope"], "unknown_model", 2, "wav2lip"),
        (["--workers", "0"], "bad_option", 2, "--workers"),
    ],
)
def test_bad_command_lines(media: Path, tmp_path: Path, args, code: str, status: int, words: str) -> None:
    line = {"id": "x", "image": "face.jpg", "audio": "hi.wav", "output": "x.mp4", "model": "wav2lip"}
    manifest = write_manifest(media / "jobs.jsonl", [line])
    proc = _batch(manifest, *args, "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == status, proc.stderr.decode()
    assert f"error [{code}]" in proc.stderr.decode() and words in proc.stderr.decode()
    assert not (media / "x.mp4").exists()


def test_missing_manifest(tmp_path: Path) -> None:
    proc = _batch(tmp_path / "nope.jsonl", "--json", cwd=tmp_path)
    body = json.loads(proc.stdout)
    assert (body["code"], proc.returncode) == ("bad_input", 65) and "nope.jsonl" in body["message"]


def test_run_and_batch_share_one_option_table(run_cli, media: Path, tmp_path: Path) -> None:
    """The same bad value gives the same code and message from ``run`` flags and a manifest line."""
    run = run_cli(
        "run", "-m", "wav2lip", "-i", media / "face.jpg", "-a", media / "hi.wav", "-o", tmp_path / "o.mp4",
        "--resize-factor", "0", "--json",
    )  # fmt: skip
    run_error = json.loads(run.stdout)
    line = {"id": "x", "image": "face.jpg", "audio": "hi.wav", "output": "x.mp4", "model": "wav2lip"}
    manifest = write_manifest(media / "jobs.jsonl", [{**line, "options": {"resize_factor": 0}}])
    jobs, _ = jobs_and_summary(_batch(manifest, "--check", "--json", cwd=tmp_path).stdout)
    batch_error = jobs["x"]["error"]
    assert run_error["code"] == batch_error["code"] == "bad_option"
    assert batch_error["message"] == f"line 1: {run_error['message']}"
    assert run_error["message"] == "--resize-factor must be positive, got 0"


def test_ray_without_the_extra_is_a_clear_error(media: Path, tmp_path: Path) -> None:
    """With Ray unimportable (as in an install without the ``ray`` extra), ``--ray`` names the fix."""
    line = {"id": "x", "image": "face.jpg", "audio": "hi.wav", "output": "x.mp4", "model": "wav2lip"}
    manifest = write_manifest(media / "jobs.jsonl", [line])
    code = "import sys; sys.modules['ray'] = None; from lipsync_cli.cli.app import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "batch", str(manifest), "--ray", "local", "--json"],
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    body = json.loads(proc.stdout.splitlines()[-1])
    assert (body["code"], proc.returncode) == ("ray_unavailable", 69)
    assert "lipsync-cli[ray]" in body["hint"]
    assert not (media / "x.mp4").exists()
