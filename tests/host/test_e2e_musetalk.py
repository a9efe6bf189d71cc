"""MuseTalk end to end through the real CLI: real env, worker, ffmpeg; stand-in weights as custom files.

The stand-in S3FD finds a "face" at about the same place in any picture (x 50..190, y 250..395 px), so the
512 px astronaut holds the whole box. The renders are a few frames long: on the CPU each frame costs seconds
of the 850M-parameter UNet and the VAE decoder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.probe import ffmpeg_exe, probe
from media import decode_audio, decode_frames, ffmpeg, speech

from lipsync_cli.envs import BackendEnv
from lipsync_cli.output import PlainReporter

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parents[1]
STILL_SECONDS = 0.14  # 3 frames at 25 fps
VIDEO_SECONDS = 0.18  # 4 frames: the 2 video frames forwards, then backwards
SIZE = 512  # the portrait's side in pixels


@pytest.fixture(scope="module")
def musetalk_standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every MuseTalk weight role as a stand-in file, made by the musetalk env's torch."""
    python = BackendEnv.named("musetalk").ensure(PlainReporter())
    out = tmp_path_factory.mktemp("musetalk-standin")
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR / "backends")}
    scripts = TESTS_DIR / "backends"
    subprocess.run(
        [
            str(python),
            str(scripts / "musetalk" / "make_musetalk_standins.py"),
            str(out),
            str(TESTS_DIR / "data" / "musetalk"),
        ],
        check=True,
        env=env,
    )
    subprocess.run(
        [
            str(python),
            str(scripts / "make_standin_checkpoints.py"),
            str(out),
            str(TESTS_DIR / "data" / "wav2lip"),
        ],
        check=True,
        env=env,
    )
    return {
        "checkpoint": out / "unet_standin.pth",
        "unet-config": out / "musetalk.json",
        "vae-checkpoint": out / "vae_standin.safetensors",
        "vae-config": out / "vae_config.json",
        "whisper-checkpoint": out / "whisper_standin.safetensors",
        "whisper-config": out / "whisper_config.json",
        "whisper-preprocessor": out / "whisper_preprocessor_config.json",
        "pose-checkpoint": out / "dwpose_standin.pth",
        "parsing-checkpoint": out / "bisenet_standin.pth",
        "detector-checkpoint": out / "s3fd_standin.pth",
        "blind-detector": out / "s3fd_blind.pth",
    }


@pytest.fixture
def render_musetalk(run_cli, musetalk_standins: dict[str, Path]):
    def render(face: Path, audio: Path, output: Path, *extra: str, detector: Path | None = None):
        weights = {
            **musetalk_standins,
            "detector-checkpoint": detector or musetalk_standins["detector-checkpoint"],
        }
        flags = [
            item for role, path in weights.items() if role != "blind-detector" for item in (f"--{role}", path)
        ]
        return run_cli(
            "run", "--model", "musetalk", "--image", face, "--audio", audio, "-o", output, "--device", "cpu",
            *flags, "--json", *extra, timeout=1800,
        )  # fmt: skip

    return render


def _speech(folder: Path, seconds: float) -> Path:
    path = folder / f"speech_{seconds}.wav"
    ffmpeg("-i", str(speech("hello")), "-t", str(seconds), str(path))
    return path


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _speech(tmp_path_factory.mktemp("speech"), STILL_SECONDS)


def _read_png(path: Path) -> np.ndarray:
    return decode_frames(path, SIZE, SIZE)[0]


def _write_png(frame: np.ndarray, path: Path) -> None:
    argv = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{SIZE}x{SIZE}"]
    subprocess.run([*argv, "-i", "-", str(path)], input=frame.tobytes(), check=True)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 512 px astronaut as lossless PNG, so every decoder sees the same pixels."""
    path = tmp_path_factory.mktemp("face") / "face.png"
    ffmpeg("-i", str(TESTS_DIR / "data" / "astronaut_512.jpg"), str(path))
    return path


def _json(proc: subprocess.CompletedProcess[bytes]) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout)


def _outside(box: dict, shape: tuple[int, ...], margin: int = 10, feather: int = 8) -> np.ndarray:
    """Mask of the pixels nothing may change: outside the face box grown by the chin margin and by the
    blending mask's Gaussian feather (its kernel is 5 % of the crop, 11 px here: 5 px each way)."""
    keep = np.ones(shape[:2], dtype=bool)
    top, left = max(box["top"] - feather, 0), max(box["left"] - feather, 0)
    keep[top : box["bottom"] + margin + feather, left : box["right"] + feather] = False
    return keep


def test_still_image_to_mp4(render_musetalk, face_png: Path, short_speech: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = _json(render_musetalk(face_png, short_speech, out, "--batch-size", "8"))

    assert result["model"] == "musetalk" and result["device"] == "cpu"
    assert result["frames"] == 3 and result["fps"] == 25 and result["frames_without_face"] == 0
    assert all(entry["sha256"] == "custom" for entry in result["weights"].values())
    assert len(result["weights"]) == 10
    assert {"model_load", "features", "detection", "prepare", "render", "total"} <= set(result["seconds"])

    info = probe(out)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.width, info.height) == (512, 512) and info.fps == 25
    frames = decode_frames(out, 512, 512)
    assert len(frames) == 3
    assert abs(len(decode_audio(out)) / 16000 - STILL_SECONDS) < 0.05
    source = _read_png(face_png).astype(np.int16)
    box = result["face_box"]
    change = np.abs(frames[0].astype(np.int16) - source).mean(axis=2)
    # H.264 is lossy: the rest of the picture stays close to the source, the lower face (the mask keeps
    # only the half below the crop's centre) is re-drawn.
    middle = (box["top"] + box["bottom"] + 10) // 2
    assert change[_outside(box, source.shape)].mean() < 2.5
    assert change[middle : box["bottom"] + 10, box["left"] : box["right"]].mean() > 6


def test_video_to_png_frames_keeps_its_frames_outside_the_face(
    render_musetalk, face_png: Path, short_speech: Path, tmp_path: Path
) -> None:
    """A 2-frame video (lossless FFV1, each frame marked in a corner) dubbed at its own 25 fps; the 4 output
    frames show the source frames ping-pong (0 1 1 0), unchanged outside the face box."""
    base = _read_png(face_png)
    sources = []
    for index in range(2):
        frame = base.copy()
        frame[:16, :16] = 200 * index  # a marker far from the face box
        sources.append(frame)
        _write_png(frame, tmp_path / f"src{index}.png")
    video = tmp_path / "talk.mkv"
    ffmpeg(
        "-framerate", "25", "-i", str(tmp_path / "src%d.png"), "-c:v", "ffv1", "-pix_fmt", "bgr0", str(video)
    )
    pattern = tmp_path / "frames" / "%04d.png"
    result = _json(render_musetalk(video, _speech(tmp_path, VIDEO_SECONDS), pattern, "--batch-size", "4"))

    assert result["frames"] == 4 and result["fps"] == 25
    files = sorted(pattern.parent.glob("*.png"))
    assert len(files) == 4
    box = result["face_box"]
    for output_index, source_index in enumerate([0, 1, 1, 0]):
        frame = _read_png(files[output_index])
        outside = _outside(box, frame.shape)
        np.testing.assert_array_equal(frame[outside], sources[source_index][outside])
        assert (frame[~outside] != sources[source_index][~outside]).any()


@pytest.mark.parametrize(
    ("case", "code", "status"),
    [("no_face", "no_face", 65), ("fps_60", "bad_option", 2), ("too_short", "audio_too_short", 65)],
)
def test_bad_inputs_fail_cleanly_with_no_output(
    render_musetalk, musetalk_standins, face_png: Path, short_speech: Path, tmp_path: Path, case, code, status
) -> None:
    out = tmp_path / "out.mp4"
    audio, extra, detector = short_speech, [], None
    if case == "no_face":
        detector = musetalk_standins["blind-detector"]
    elif case == "fps_60":
        extra = ["--fps", "60"]  # the official window rule fails from 50 fps up
    else:
        audio = tmp_path / "blip.wav"
        ffmpeg("-i", str(short_speech), "-t", "0.02", str(audio))  # 20 ms: not one 40 ms frame
    proc = render_musetalk(face_png, audio, out, *extra, detector=detector)
    assert proc.returncode == status, proc.stderr.decode()[-2000:]
    assert json.loads(proc.stdout)["code"] == code
    assert not out.exists() and list(tmp_path.glob("*.mp4*")) == []


def test_batch_renders_rgba_and_grayscale_portraits_on_one_warm_worker(
    musetalk_standins: dict[str, Path], face_png: Path, short_speech: Path, tmp_path: Path
) -> None:
    """MuseTalk in ``lipsync batch``: an RGBA and a grayscale PNG, one worker, one model load."""
    portraits = {"rgba": tmp_path / "rgba.png", "gray": tmp_path / "gray.png"}
    for pix_fmt, path in portraits.items():
        ffmpeg("-i", str(face_png), "-pix_fmt", "rgba" if pix_fmt == "rgba" else "gray", str(path))
    options = {role.replace("-", "_"): str(path) for role, path in musetalk_standins.items()}
    del options["blind_detector"]
    lines = [
        {"id": name, "model": "musetalk", "image": str(path), "audio": str(short_speech),
         "output": str(tmp_path / f"{name}.mp4"), "options": options}
        for name, path in portraits.items()
    ]  # fmt: skip
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = subprocess.run(
        [sys.executable, "-m", "lipsync_cli", "batch", str(manifest), "--device", "cpu", "--json"],
        capture_output=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    jobs = {r["id"]: r for r in records if r["kind"] == "job"}
    assert [jobs[name]["status"] for name in portraits] == ["ok", "ok"], jobs
    assert records[-1]["worker_starts"] == {"musetalk": 1}
    # The second job loaded nothing more (model_loads counts every network the worker loaded).
    assert jobs["rgba"]["worker"]["model_loads"] == jobs["gray"]["worker"]["model_loads"] >= 1
    for name in portraits:
        assert jobs[name]["frames"] == 3
        assert len(decode_frames(tmp_path / f"{name}.mp4", SIZE, SIZE)) == 3
    # The grayscale portrait comes out gray above the face (the stand-in box starts at y 250), up to
    # H.264's chroma noise; the source's own pixels there are gray to the level.
    top = decode_frames(tmp_path / "gray.mp4", SIZE, SIZE)[0][:200].astype(np.int16)
    assert np.ptp(top, axis=2).mean() < 2.0
    source = _read_png(portraits["gray"])[:200].astype(np.int16)
    assert np.abs(top - source).mean() < 2.5
