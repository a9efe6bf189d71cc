"""Every command's result through the one output sink: ``--json`` objects, plain lines, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipsync_cli.catalogue import get_model, model_weight_files


def _object(proc) -> dict:
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, proc.stdout
    body = json.loads(lines[0])
    assert body["schema"] == 1
    return body


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["models"], "models"),
        (["env", "status", "wav2lip"], "env"),
        (["weights", "status", "sadtalker"], "weights"),
        (["weights", "path", "wav2lip"], "weights"),
        (["weights", "rm", "wav2lip"], "weights_removed"),
    ],
)
def test_json_everywhere(run_cli, args: list[str], kind: str) -> None:
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert _object(proc)["kind"] == kind


def test_models_name_the_licences(run_cli) -> None:
    body = _object(run_cli("models", "--json"))
    wav2lip = next(row for row in body["models"] if row["model"] == "wav2lip")
    assert any("non-commercial" in text for text in wav2lip["licenses"])


def test_weights_rm_deletes_the_stored_files(run_cli, lipsync_home: Path) -> None:
    store = lipsync_home / "weights"
    store.mkdir(parents=True)
    files = model_weight_files(get_model("wav2lip"), every_checkpoint=False)
    for wf in files:
        (store / wf.name).write_bytes(b"not the real file")
    body = _object(run_cli("weights", "rm", "wav2lip", "--json"))
    assert body["files"] == [{"name": wf.name, "removed": True} for wf in files]
    assert list(store.glob("*.pth")) == []
    plain = run_cli("weights", "rm", "wav2lip")
    assert plain.returncode == 0
    assert plain.stdout.decode().splitlines() == [f"{wf.name}: not there" for wf in files]


def test_doctor_fails_on_a_corrupt_weight_file_only(run_cli, lipsync_home: Path) -> None:
    before = run_cli("doctor", "--json")
    body = _object(before)
    failed = [check for check in body["checks"] if check["state"] == "fail"]
    assert body["ok"] == (not failed) and before.returncode == (1 if failed else 0)
    # A file that is only not there yet is set up on first use: information, not a failure.
    assert all(c["state"] == "info" for c in body["checks"] if c["name"].startswith("weights "))

    store = lipsync_home / "weights"
    store.mkdir(parents=True)
    (store / "wav2lip.pth").write_bytes(b"truncated")
    after = run_cli("doctor", "--json")
    body = _object(after)
    check = next(c for c in body["checks"] if c["name"] == "weights wav2lip.pth")
    assert check["state"] == "fail" and check["detail"].startswith("mismatch")
    assert after.returncode == 1 and body["ok"] is False
    plain = run_cli("doctor")
    assert plain.returncode == 1
    assert any(line.startswith("--  weights wav2lip.pth") for line in plain.stdout.decode().splitlines())
