"""Dubbing video portraits end to end through the real CLI (real env, worker, ffmpeg; stand-in weights).

The portrait video is the committed astronaut panned across a grey shot, then cut to a closer shot on
blue, at 30000/1001 fps, written losslessly so output pixels can be compared with the source.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.probe import ffmpeg_exe, probe
from media import decode_audio, decode_frames, ffmpeg, speech

pytestmark = pytest.mark.slow

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
WIDTH, HEIGHT = 160, 112
NTSC = 30000 / 1001
BOX = ("20", "100", "60", "140")  # --box TOP BOTTOM LEFT RIGHT


def _json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def write_raw_video(frames: np.ndarray, path: Path, rate: str) -> Path:
    height, width = frames.shape[1:3]
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
         "-framerate", rate, "-i", "-", "-c:v", "ffv1", "-pix_fmt", "bgr0", str(path)],
        input=frames.tobytes(), check=True,
    )  # fmt: skip
    return path


def scene_frames(tmp_path: Path) -> np.ndarray:
    """12 frames of a 64 px portrait panning right on grey, then 10 of an 80 px one on blue."""
    portraits = {}
    for side in (64, 80):
        png = tmp_path / f"portrait{side}.png"
        ffmpeg("-i", str(DATA_DIR / "astronaut_256.jpg"), "-vf", f"scale={side}:{side}:flags=area", str(png))
        portraits[side] = decode_frames(png, side, side)[0]
    frames = np.empty((22, HEIGHT, WIDTH, 3), np.uint8)
    for index in range(22):
        second = index >= 12
        frames[index] = (40, 60, 150) if second else (90, 90, 90)
        side, (x, y) = (80, (60, 20)) if second else (64, (10 + 3 * index, 30))
        frames[index, y : y + side, x : x + side] = portraits[side]
    return frames


@pytest.fixture
def scene(tmp_path: Path) -> tuple[np.ndarray, Path]:
    frames = scene_frames(tmp_path)
    return frames, write_raw_video(frames, tmp_path / "scene.mkv", "30000/1001")


def test_video_keeps_its_ntsc_rate_and_covers_the_speech(render_wav2lip, scene, tmp_path: Path) -> None:
    _frames, video = scene
    hello = speech("hello")
    seconds = len(decode_audio(hello)) / 16000
    out = tmp_path / "dub.mp4"
    result = _json(render_wav2lip(video, hello, out, "--json", "--box", *BOX))
    expected = int(np.ceil(seconds * NTSC - 1e-9))  # 31: the 22-frame video loops
    assert result["frames"] == expected and result["fps"] == pytest.approx(NTSC, abs=1e-9)
    assert result["duration_mode"] == "loop" and result["source_frames"] == 22
    assert result["detection"] == "box" and result["frames_without_face"] == 0
    assert result["peak_rss_mb"] > 0
    info = probe(out)
    assert info.fps == pytest.approx(NTSC, abs=1e-9) and (info.width, info.height) == (WIDTH, HEIGHT)
    assert len(decode_frames(out, WIDTH, HEIGHT)) == expected
    assert abs(len(decode_audio(out)) / 16000 - seconds) < 0.05


def test_cut_ends_speech_and_video_with_the_shorter(render_wav2lip, scene, tmp_path: Path) -> None:
    _frames, video = scene
    out = tmp_path / "cut.mp4"
    result = _json(
        render_wav2lip(video, speech("hello"), out, "--json", "--box", *BOX, "--duration-mode", "cut")
    )
    assert result["frames"] == 22 and result["duration_mode"] == "cut"
    assert len(decode_frames(out, WIDTH, HEIGHT)) == 22
    assert abs(len(decode_audio(out)) / 16000 - 22 / NTSC) < 0.05  # the speech is cut with the video


def test_second_render_reuses_the_cached_detections(
    render_wav2lip, scene, tmp_path: Path, lipsync_home: Path
) -> None:
    _frames, video = scene
    results, renders = [], []
    for name in ("first", "second"):
        pattern = tmp_path / name / "%04d.png"
        pattern.parent.mkdir()
        results.append(_json(render_wav2lip(video, speech("hi"), pattern, "--json", "--paste", "exact")))
        renders.append([decode_frames(f, WIDTH, HEIGHT)[0] for f in sorted(pattern.parent.glob("*.png"))])
    assert [r["detection"] for r in results] == ["detected", "cache"]
    assert results[1]["seconds"]["detection"] < results[0]["seconds"]["detection"]
    assert len(renders[0]) == results[0]["frames"] > 0
    np.testing.assert_array_equal(np.stack(renders[1]), np.stack(renders[0]))
    assert len(list((lipsync_home / "cache" / "detections").glob("*.npz"))) == 1


def test_memory_does_not_grow_with_the_length_of_the_video(render_wav2lip, tmp_path: Path) -> None:
    """30 s and 3 min of 64x48 video at 0.25 fps (few model calls), same batch size: same peak RSS."""
    peaks = {}
    for seconds in (30, 180):
        video, voice = tmp_path / f"v{seconds}.mp4", tmp_path / f"a{seconds}.wav"
        ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate=1/4:duration={seconds}",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video))  # fmt: skip
        ffmpeg("-stream_loop", "-1", "-i", str(speech("lips")), "-t", str(seconds), str(voice))
        result = _json(render_wav2lip(video, voice, tmp_path / f"o{seconds}.mp4", "--json",
                                      "--box", "0", "48", "0", "64", "--batch-size", "4"))  # fmt: skip
        assert result["frames"] == -(-seconds // 4)
        peaks[seconds] = result["peak_rss_mb"]
    assert peaks[180] <= peaks[30] * 1.03, peaks


def test_face_at_needs_two_numbers_before_anything_starts(run_cli, scene, tmp_path: Path) -> None:
    _frames, video = scene
    out = tmp_path / "never.mp4"
    proc = run_cli("run", "--model", "wav2lip", "--image", video, "--audio", speech("hi"), "-o", out,
                   "--face-at", "10,20,30", "--json")  # fmt: skip
    assert proc.returncode == 2
    failure = json.loads(proc.stdout)
    assert failure["code"] == "bad_option" and "--face-at" in failure["message"]
    assert not out.exists()
