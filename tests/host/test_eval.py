"""``lipsync eval`` end to end: a clip from ``lipsync run``, the real syncnet env and worker, ffmpeg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_DIR, TESTS_DIR
from media import copy_speech, decode_audio, decode_frames, ffmpeg

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter

pytestmark = pytest.mark.slow

BOX = ("40", "20", "220", "220")  # the astronaut's face; the stand-in detector finds no face above 0.9
SHIFT = 5  # frames


@pytest.fixture(scope="session")
def syncnet_standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    python = BackendEnv.named("syncnet").ensure(PlainReporter())
    out = tmp_path_factory.mktemp("syncnet-standin")
    script = TESTS_DIR / "backends" / "syncnet" / "make_syncnet_standins.py"
    subprocess.run([str(python), str(script), str(out), str(DATA_DIR / "syncnet")], check=True)
    return {"syncnet": out / "syncnet_v2.model", "detector": out / "sfd_face.pth"}


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return copy_speech("lips", path)


@pytest.fixture(scope="session")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, standin_checkpoints: dict[str, Path], long_speech: Path
) -> Path:
    """A clip made by ``lipsync run -m wav2lip`` (stand-in weights), once for every test here."""
    out = tmp_path_factory.mktemp("rendered") / "rendered.mp4"
    env = {**os.environ, "LIPSYNC_HOME": str(out.parent / "home"), "LIPSYNC_OFFLINE": "1"}
    argv = [sys.executable, "-m", "lipsync_cli", "run", "-m", "wav2lip", "-i", DATA_DIR / "astronaut_256.jpg"]
    argv += [
        "-a",
        long_speech,
        "-o",
        out,
        "--device",
        "cpu",
        "--checkpoint",
        standin_checkpoints["generator"],
    ]
    argv += ["--detector-checkpoint", standin_checkpoints["detector"]]
    proc = subprocess.run([str(a) for a in argv], capture_output=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def run_eval(run_cli, syncnet_standins: dict[str, Path]):
    def run(*args: str | Path, box: bool = True):
        extra = ("--box", *BOX) if box else ("--detector-checkpoint", syncnet_standins["detector"])
        return run_cli("eval", *args, "--device", "cpu", "--checkpoint", syncnet_standins["syncnet"], *extra)

    return run


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_own_audio_and_audio_late_by_five_frames(run_eval, rendered: Path, tmp_path: Path) -> None:
    own = _json(run_eval(rendered, "--json"))
    assert own["kind"] == "eval" and own["ok"] and own["metric"] == "syncnet"
    assert own["frames"] == len(decode_frames(rendered, 256, 256)) and own["fps"] == 25
    assert own["face_share"] == 1.0 and len(own["tracks"]) == 1
    assert own["offsets"] == list(range(15, -16, -1)) and len(own["curve"]) == len(own["dists"]) == 31
    assert own["lse_d"] == pytest.approx(min(own["dists"]), abs=1e-5)
    assert own["lse_c"] == pytest.approx(float(np.median(own["dists"])) - min(own["dists"]), abs=1e-5)
    assert own["offset_ms"] == 40 * own["offset_frames"]
    assert len(own["per_second"]) == -(-own["frames"] // 25)
    assert own["weights"]["syncnet"]["sha256"] == "custom" and "detector" not in own["weights"]
    assert {"load_models", "evaluate"} <= set(own["seconds"])

    speech = decode_audio(rendered)
    late = write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(SHIFT * 640), speech]))
    shifted = _json(run_eval(rendered, "--audio", late, "--json"))
    # Offset index j of the first run is j + 5 of the second. The two differ only in the rows whose audio
    # window is zero padding in one run and a real (silent) window in the other: at most 5 of N per offset.
    first, second = np.array(own["dists"][: 31 - SHIFT]), np.array(shifted["dists"][SHIFT:])
    rows = own["tracks"][0]["frames"] - 5
    bound = 2 * SHIFT / rows * max(own["dists"] + shifted["dists"])
    assert np.abs(first - second).max() <= bound
    assert np.corrcoef(first, second)[0, 1] > 0.9


def test_sheet_is_a_png_of_the_stated_size(run_eval, rendered: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    result = _json(run_eval(rendered, "--sheet", sheet, "--json"))
    assert result["sheet"] == str(sheet)
    assert decode_frames(sheet, 1200, 560).shape == (1, 560, 1200, 3)
    again = run_eval(rendered, "--sheet", sheet)
    assert again.returncode == 73 and b"output_exists" in again.stderr


def test_several_videos_give_a_table(run_eval, rendered: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(rendered.read_bytes())
    proc = run_eval(rendered, copy)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split() == ["video", "LSE-D", "LSE-C", "offset", "face", "%"]
    assert len(lines) == 3 and lines[1].split()[1:] == lines[2].split()[1:]


@pytest.mark.parametrize("case", ["no_face", "no_audio_stream", "audio_too_short", "missing_video"])
def test_bad_input(run_eval, rendered: Path, tmp_path: Path, case: str) -> None:
    sheet = tmp_path / "sheet.png"
    if case == "no_face":
        proc = run_eval(rendered, "--sheet", sheet, "--json", box=False)
    elif case == "no_audio_stream":
        mute = tmp_path / "mute.mp4"
        ffmpeg("-i", str(rendered), "-an", "-c:v", "copy", str(mute))
        proc = run_eval(mute, "--sheet", sheet, "--json")
    elif case == "audio_too_short":
        tiny = write_wav(tmp_path / "tiny.wav", 0.1 * np.sin(np.arange(1600) / 5.0))  # 0.1 s
        proc = run_eval(rendered, "--audio", tiny, "--sheet", sheet, "--json")
    else:
        proc = run_eval(tmp_path / "nothing.mp4", "--sheet", sheet, "--json")
    expected = {
        "no_face": ("no_face", 65),
        "no_audio_stream": ("bad_audio", 65),
        "audio_too_short": ("audio_too_short", 65),
        "missing_video": ("bad_input", 65),
    }[case]
    assert (json.loads(proc.stdout)["code"], proc.returncode) == expected, proc.stderr.decode()
    assert not sheet.exists()


def test_missing_syncnet_weights(run_cli, rendered: Path) -> None:
    proc = run_cli("eval", rendered, "--box", *BOX, "--json")
    assert proc.returncode == 66
    assert json.loads(proc.stdout)["code"] == "weights_missing"
    assert b"syncnet_v2.model" in proc.stderr


def test_run_with_eval_adds_the_scores(
    run_cli, standin_checkpoints: dict[str, Path], syncnet_standins: dict[str, Path], lipsync_home: Path,
    long_speech: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """``run --eval``: scores in the face box the render used, with syncnet_v2.model from the store."""
    (lipsync_home / "weights").mkdir(parents=True)
    (lipsync_home / "weights" / "syncnet_v2.model").write_bytes(syncnet_standins["syncnet"].read_bytes())
    out = tmp_path / "out.mp4"
    proc = run_cli(
        "run", "-m", "wav2lip", "-i", DATA_DIR / "astronaut_256.jpg", "-a", long_speech, "-o", out, "--json",
        "--device", "cpu", "--checkpoint", standin_checkpoints["generator"],
        "--detector-checkpoint", standin_checkpoints["detector"], "--eval",
    )  # fmt: skip
    result = _json(proc)
    scores = result["eval"]
    assert {"lse_d", "lse_c", "offset_frames", "offset_ms", "face_share", "per_second"} <= scores.keys()
    assert scores["face_share"] == 1.0
    assert scores["weights"]["syncnet"]["verified"] == "false"
    assert len(scores["weights"]["syncnet"]["sha256"]) == 64 and "detector" not in scores["weights"]


def test_batch_eval_marks_low_sync_and_keeps_the_output(
    standin_checkpoints: dict[str, Path],
    syncnet_standins: dict[str, Path],
    lipsync_home: Path,
    tmp_path: Path,
) -> None:
    """``batch --eval --min-lse-c``: every job scored; one above any real LSE-C bar is ``low_sync``."""
    (lipsync_home / "weights").mkdir(parents=True)
    (lipsync_home / "weights" / "syncnet_v2.model").write_bytes(syncnet_standins["syncnet"].read_bytes())
    speech = copy_speech("hi_there", tmp_path / "hi.wav")
    options = {
        "checkpoint": str(standin_checkpoints["generator"]),
        "detector_checkpoint": str(standin_checkpoints["detector"]),
        "box": [20, 220, 40, 220],
    }
    job = {
        "image": str(DATA_DIR / "astronaut_256.jpg"),
        "audio": str(speech),
        "model": "wav2lip",
        "options": options,
    }
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({**job, "id": "a", "output": str(tmp_path / "a.mp4")}) + "\n")
    argv = [sys.executable, "-m", "lipsync_cli", "batch", manifest, "--device", "cpu", "--json", "--eval"]
    proc = subprocess.run([str(a) for a in [*argv, "--min-lse-c", "1e9"]], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    record, summary = (json.loads(line) for line in proc.stdout.decode().splitlines())
    assert record["status"] == "low_sync" and (tmp_path / "a.mp4").is_file()
    assert record["eval"]["lse_c"] < 1e9 and record["eval"]["face_share"] == 1.0
    assert summary["low_sync"] == 1 and summary["error"] == 0


def test_models_lists_the_metric_with_its_licence(run_cli) -> None:
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    (metric,) = json.loads(proc.stdout)["metrics"]
    assert metric["command"] == "lipsync eval" and "research use only" in metric["license"]
    assert metric["weights"] == {"syncnet_v2.model": "missing", "s3fd-619a316812.pth": "missing"}
