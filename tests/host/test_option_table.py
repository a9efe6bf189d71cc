"""The backends' option declarations are the one source of the CLI flags, their help and every check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lipsync_kit.options import COMMON_OPTIONS

from lipsync_cli.catalogue import BACKENDS, get_model
from lipsync_cli.model_options import backend_options, resolve_options


@pytest.fixture(scope="module")
def run_help() -> str:
    from typer.testing import CliRunner

    from lipsync_cli.cli.app import app

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output.replace("│", " "))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_declared_option_is_a_flag_with_its_help(run_help: str, backend: str) -> None:
    for option in backend_options(backend):
        assert option.flag in run_help, option.flag
        assert option.help in run_help, option.help


def test_help_shows_each_models_defaults_from_the_declarations(run_help: str) -> None:
    assert "Padding around the detected face. (default: 0 10 0 0)" in run_help
    assert "(default: sadtalker: crop; sadtalker-still: full)" in run_help
    assert (
        "(default: wav2lip: 128; sadtalker, sadtalker-still: 2 on CPU, 16 on CUDA; musetalk: 8)" in run_help
    )
    assert "MuseTalk 1.5 ignores it" in run_help  # --bbox-shift is accepted, and says it does nothing
    assert "Head-motion style. (0..45) (default: 0)" in run_help
    assert COMMON_OPTIONS[0].flag in run_help


def test_flags_reach_the_table_unchanged(tmp_path: Path) -> None:
    """What `lipsync run` parses is what a manifest line gives: one resolver, one set of messages."""
    model = get_model("sadtalker")
    resolved = resolve_options(model, {"input_yaw": "0,20 -10", "size": 512}, base_dir=tmp_path)
    assert resolved["input_yaw"] == [0.0, 20.0, -10.0] and resolved["size"] == 512
    assert resolved["pose_style"] == 0 and resolved["preprocess"] == "crop"


@pytest.mark.parametrize(
    ("model", "flags", "option", "message"),
    [
        ("sadtalker", ["--pose-style", "46"], {"pose_style": 46}, "--pose-style must be at most 45, got 46"),
        ("sadtalker", ["--size", "384"], {"size": 384}, "--size must be one of 256, 512, got 384"),
        ("wav2lip", ["--paste", "hard"], {"paste": "hard"}, "--paste must be one of blend, exact"),
        ("wav2lip", ["--box", "10", "5", "0", "20"], {"box": [10, 5, 0, 20]}, "--box must be TOP BOTTOM"),
    ],
)
def test_run_and_batch_refuse_a_bad_value_alike(
    run_cli, tmp_path: Path, model: str, flags: list[str], option: dict, message: str
) -> None:
    face, audio = tmp_path / "face.png", tmp_path / "speech.wav"
    face.write_bytes(b"")
    audio.write_bytes(b"")
    run = run_cli("run", "-m", model, "-i", face, "-a", audio, "-o", tmp_path / "out.mp4", *flags, "--json")
    assert run.returncode == 2
    error = json.loads(run.stdout)
    assert error["code"] == "bad_option" and message in error["message"]

    line = {"id": "a", "image": str(face), "audio": str(audio), "output": "a.mp4", "model": model}
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({**line, "options": option}) + "\n")
    batch = run_cli("batch", manifest, "--check", "--json")
    record = json.loads(batch.stdout.splitlines()[0])
    assert record["error"]["code"] == "bad_option" and message in record["error"]["message"]


def test_an_option_of_another_model_is_refused(run_cli, tmp_path: Path) -> None:
    run = run_cli("run", "-m", "wav2lip", "-i", "f.png", "-a", "s.wav", "-o", "o.mp4", "--pose-style", "3")
    assert run.returncode == 2
    assert b"error [bad_option]: wav2lip has no option 'pose_style'" in run.stderr
