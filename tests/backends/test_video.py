"""lipsync_kit.video: reading stills and videos, writing mp4/mkv/png/streams, with the real ffmpeg."""

from __future__ import annotations

import os
import subprocess
import threading
import wave
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from lipsync_kit.audio import load_audio
from lipsync_kit.errors import BackendError
from lipsync_kit.files import PARTIAL_MARK, find_partials
from lipsync_kit.probe import probe
from lipsync_kit.protocol import ErrorCode
from lipsync_kit.video import VideoWriter, read_visual

NTSC = 30000 / 1001


def ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(argv, input=stdin, check=True)


def make_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames that differ from each other and are not symmetric (catches swapped axes/channels)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return [
        np.stack([(xx * 3 + i * 7) % 256, (yy * 5) % 256, np.full_like(xx, (i * 40) % 256)], axis=-1).astype(
            np.uint8
        )
        for i in range(count)
    ]


def write_lossless_video(path: Path, frames: list[np.ndarray], rate: str) -> Path:
    height, width = frames[0].shape[:2]
    raw = b"".join(f.tobytes() for f in frames)
    ffmpeg(
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{width}x{height}",
        "-framerate",
        rate,
        "-i",
        "-",
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "bgr0",
        str(path),
        stdin=raw,
    )
    return path


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.3 s of 16 kHz mono: a 300 Hz tone."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    t = np.arange(20800) / 16000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes())
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if PARTIAL_MARK in p.name)


# ----------------------------------------------------------------------------------------- input


def test_png_still_is_exact(tmp_path: Path) -> None:
    image = make_frames(1, 65, 47)[0]
    cv2.imwrite(str(tmp_path / "face.png"), image)
    visual = read_visual(tmp_path / "face.png")
    assert visual.is_still and visual.fps is None and len(visual) == 1
    assert visual.size == (65, 47)
    np.testing.assert_array_equal(visual.frames[0], image)


def test_jpeg_still(tmp_path: Path) -> None:
    image = cv2.GaussianBlur(make_frames(1)[0], (5, 5), 0)
    cv2.imwrite(str(tmp_path / "face.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    visual = read_visual(tmp_path / "face.jpg")
    assert visual.is_still and visual.frames[0].shape == (48, 64, 3) and visual.frames[0].dtype == np.uint8
    assert np.abs(visual.frames[0].astype(int) - image).mean() < 3


def test_grayscale_becomes_three_channels(tmp_path: Path) -> None:
    gray = make_frames(1)[0][..., 0]
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    frame = read_visual(tmp_path / "gray.png").frames[0]
    assert frame.shape == (48, 64, 3)
    for channel in range(3):
        np.testing.assert_array_equal(frame[..., channel], gray)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    bgr = make_frames(1)[0]
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 37, np.uint8)]))
    visual = read_visual(tmp_path / "rgba.png")
    assert visual.is_still
    np.testing.assert_array_equal(visual.frames[0], bgr)


def test_16_bit_is_rounded_to_8(tmp_path: Path) -> None:
    deep = (np.arange(64 * 48 * 3).reshape(48, 64, 3) * 7 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    frame = read_visual(tmp_path / "deep.png").frames[0]
    assert frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, np.round(deep / 257).astype(np.uint8))


def test_kind_comes_from_decoding_not_the_name(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "still.png"), make_frames(1)[0])
    os.replace(tmp_path / "still.png", tmp_path / "looks_like.mp4")
    assert read_visual(tmp_path / "looks_like.mp4").is_still
    write_lossless_video(tmp_path / "clip.mkv", make_frames(4), "25")
    os.replace(tmp_path / "clip.mkv", tmp_path / "looks_like.png")
    visual = read_visual(tmp_path / "looks_like.png")
    assert not visual.is_still and len(visual) == 4 and visual.fps == 25


def test_ntsc_video_count_fps_and_pixels(tmp_path: Path) -> None:
    frames = make_frames(37)
    visual = read_visual(write_lossless_video(tmp_path / "clip.mkv", frames, "30000/1001"))
    assert not visual.is_still
    assert visual.fps == pytest.approx(NTSC, abs=1e-9)
    assert len(visual) == 37 and visual.size == (64, 48)
    for got, want in zip(visual.frames, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(read_visual(tmp_path / "clip.mkv", max_frames=5)) == 5


def test_fractional_rate_12_5(tmp_path: Path) -> None:
    visual = read_visual(write_lossless_video(tmp_path / "slow.mkv", make_frames(6), "25/2"))
    assert visual.fps == 12.5 and len(visual) == 6


def test_animated_gif_is_a_video(tmp_path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", str(tmp_path / "anim.gif"))
    visual = read_visual(tmp_path / "anim.gif")
    assert not visual.is_still and len(visual) == 10 and visual.fps == 10


def test_rotated_video_is_upright(tmp_path: Path) -> None:
    write_lossless_video(tmp_path / "flat.mkv", make_frames(3), "25")
    ffmpeg(
        "-display_rotation",
        "90",
        "-i",
        str(tmp_path / "flat.mkv"),
        "-c",
        "copy",
        str(tmp_path / "turned.mp4"),
    )
    visual = read_visual(tmp_path / "turned.mp4")
    assert visual.size == (48, 64) and len(visual) == 3


def expect_bad_input(path: Path, *words: str) -> None:
    with pytest.raises(BackendError) as err:
        read_visual(path)
    assert err.value.code == ErrorCode.BAD_INPUT
    assert str(path) in err.value.message
    for word in words:
        assert word in err.value.message


def test_unreadable_inputs(tmp_path: Path, speech: Path) -> None:
    expect_bad_input(tmp_path / "missing.png", "not found")
    (tmp_path / "notes.txt").write_text("not a face\n" * 40)
    expect_bad_input(tmp_path / "notes.txt")
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(3000))
    expect_bad_input(tmp_path / "junk.jpg")
    expect_bad_input(speech, "no picture", "audio")


# ---------------------------------------------------------------------------------------- output


def test_mp4_with_audio(tmp_path: Path, speech: Path) -> None:
    count = 33  # ceil(1.3 s * 25 fps)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, audio=speech) as writer:
        writer.write_all(make_frames(count))
    assert writer.frames_written == count
    assert os.listdir(tmp_path) == ["out.mp4"]
    info = probe(out)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.width, info.height, info.fps) == (64, 48, 25)
    visual = read_visual(out)
    assert len(visual) == count and visual.fps == 25
    decoded = load_audio(out, 16000)
    assert abs(len(decoded) - 20800) <= 160  # the whole track, AAC framing aside (10 ms)


def test_mp4_colours_survive(tmp_path: Path) -> None:
    flat = np.zeros((64, 64, 3), np.uint8)
    flat[:] = (40, 120, 200)
    with VideoWriter(tmp_path / "flat.mp4", fps=25) as writer:
        writer.write_all([flat] * 3)
    got = read_visual(tmp_path / "flat.mp4").frames[1].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(got, (40, 120, 200), atol=1.0)


def test_mkv_ntsc_odd_size(tmp_path: Path, speech: Path) -> None:
    out = tmp_path / "out.mkv"
    with VideoWriter(out, fps=NTSC, audio=speech) as writer:
        writer.write_all(make_frames(39, 65, 47))
    info = probe(out)
    assert info.has_audio and info.fps == pytest.approx(NTSC, abs=1e-9)  # probe and reader: one parser
    visual = read_visual(out)
    assert visual.size == (66, 48)  # padded to even for yuv420p
    assert len(visual) == 39 and visual.fps == pytest.approx(NTSC, abs=1e-9)
    decoded = load_audio(out, 16000)
    assert 20800 <= len(decoded) <= 20800 + 1024  # Matroska keeps the last AAC frame's padding


def test_png_pattern(tmp_path: Path, speech: Path) -> None:
    frames = make_frames(5, 65, 47)
    (tmp_path / "frames").mkdir()
    with VideoWriter(tmp_path / "frames" / "f_%03d.png", fps=25, audio=speech) as writer:
        writer.write_all(frames)
    assert sorted(os.listdir(tmp_path / "frames")) == [f"f_{i:03d}.png" for i in range(1, 6)]
    for i, frame in enumerate(frames, start=1):
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "frames" / f"f_{i:03d}.png")), frame)


def test_png_into_a_new_folder(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "shots", fps=25, output_format="png") as writer:
        writer.write_all(make_frames(3))
    assert sorted(os.listdir(tmp_path)) == ["shots"]
    assert sorted(os.listdir(tmp_path / "shots")) == ["00001.png", "00002.png", "00003.png"]


@pytest.mark.parametrize("output_format", ["mp4", "mkv"])
def test_stream_to_a_pipe(tmp_path: Path, speech: Path, output_format: str) -> None:
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with VideoWriter(write_fd, fps=25, audio=speech, output_format=output_format) as writer:  # type: ignore[arg-type]
            writer.write_all(make_frames(33))
    finally:
        os.close(write_fd)
        reader.join()
    out = tmp_path / f"streamed.{output_format}"
    out.write_bytes(bytes(received))
    assert probe(out).has_audio
    assert len(read_visual(out)) == 33


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("name", ["out.mp4", "out.mkv", "frames/%05d.png", "shots"])
def test_failure_leaves_nothing(tmp_path: Path, speech: Path, error: type[BaseException], name: str) -> None:
    (tmp_path / "frames").mkdir()
    output_format = None if "." in name else "png"
    with (
        pytest.raises(error),
        VideoWriter(tmp_path / name, fps=25, audio=speech, output_format=output_format) as writer,
    ):
        writer.write_all(make_frames(10))
        raise error
    assert sorted(os.listdir(tmp_path)) == ["frames"]
    assert os.listdir(tmp_path / "frames") == []
    assert writer._proc is not None and writer._proc.poll() is not None  # ffmpeg is gone


@pytest.mark.parametrize("name", ["out.mp4", "out.mov", "out.mkv"])
def test_the_writers_temp_file_is_a_partial_find_partials_finds(tmp_path: Path, name: str) -> None:
    """The host cleans up after a killed worker with `find_partials`: the writer's temp must be found."""
    writer = VideoWriter(tmp_path / name, fps=25)
    writer.write_all(make_frames(3))
    partials = find_partials(tmp_path / name)
    assert len(partials) == 1 and partials[0].name.startswith(f".{name}.partial-")
    writer.abort()
    assert find_partials(tmp_path / name) == [] and os.listdir(tmp_path) == []


def test_ffmpeg_failure_is_encode_failed(tmp_path: Path) -> None:
    not_audio = tmp_path / "words.txt"
    not_audio.write_text("hello")
    with (
        pytest.raises(BackendError) as err,
        VideoWriter(tmp_path / "out.mp4", fps=25, audio=not_audio) as writer,
    ):
        writer.write_all(make_frames(200, 320, 240))
    assert err.value.code == ErrorCode.ENCODE_FAILED
    assert "words.txt" in err.value.message  # ffmpeg's own words are in the message
    assert sorted(os.listdir(tmp_path)) == ["words.txt"]


def test_no_frames_is_encode_failed(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err, VideoWriter(tmp_path / "out.mp4", fps=25):
        pass
    assert err.value.code == ErrorCode.ENCODE_FAILED
    assert os.listdir(tmp_path) == []


def test_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(BackendError) as err:
        VideoWriter(out, fps=25)
    assert err.value.code == ErrorCode.OUTPUT_EXISTS
    assert out.read_bytes() == b"precious" and leftovers(tmp_path) == []
    with VideoWriter(out, fps=25, overwrite=True) as writer:
        writer.write(make_frames(1)[0])
    assert len(read_visual(out)) == 1 and leftovers(tmp_path) == []


def test_existing_png_frames(tmp_path: Path) -> None:
    (tmp_path / "00001.png").write_bytes(b"precious")
    with pytest.raises(BackendError) as err:
        VideoWriter(tmp_path / "%05d.png", fps=25)
    assert err.value.code == ErrorCode.OUTPUT_EXISTS


def test_missing_folder(tmp_path: Path) -> None:
    for target in (tmp_path / "nowhere" / "out.mp4", tmp_path / "nowhere" / "%05d.png", tmp_path / "a" / "b"):
        with pytest.raises(BackendError) as err:
            VideoWriter(target, fps=25, output_format="png" if target.name == "b" else None)
        assert err.value.code == ErrorCode.OUTPUT_UNWRITABLE
    assert os.listdir(tmp_path) == []


def test_unwritable_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root may write into any folder on disk, but Linux's /proc takes no new files
        folder = Path("/proc")
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
    with pytest.raises(BackendError) as err:
        VideoWriter(folder / "out.mp4", fps=25)
    assert err.value.code == ErrorCode.OUTPUT_UNWRITABLE
    assert str(folder) in err.value.message


def test_output_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(BackendError) as err:
        VideoWriter(tmp_path / "out.mp4", fps=25)
    assert err.value.code == ErrorCode.OUTPUT_UNWRITABLE
