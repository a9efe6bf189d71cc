"""lipsync_kit.video_source: streaming decode with the real ffmpeg (rates, start, seeking, colour)."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from lipsync_kit.video import VideoWriter, open_portrait
from lipsync_kit.video_source import ColourTags, VideoSource, probe_video


def ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(argv, input=stdin, check=True)


def stream_line(path: Path) -> str:
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return next(line for line in proc.stderr.splitlines() if "Video:" in line)


def lossless_clip(path: Path, frames: int, rate: str, size: str = "64x48") -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}", "-frames:v", str(frames),
           "-c:v", "ffv1", str(path))  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("rate", "fps"), [("24000/1001", Fraction(24000, 1001)), ("30000/1001", Fraction(30000, 1001))]
)
def test_ntsc_rates_are_exact_and_every_frame_comes_once(tmp_path: Path, rate: str, fps: Fraction) -> None:
    clip = lossless_clip(tmp_path / "clip.mkv", 45, rate)
    info = probe_video(clip)
    assert info.fps == fps and info.size == (64, 48)
    with VideoSource(info) as source:
        frames = list(source)
    assert len(frames) == 45
    assert len({frame.tobytes() for frame in frames}) == 45  # no frame repeated or dropped


def test_variable_rate_becomes_constant_at_the_average_rate(tmp_path: Path) -> None:
    """10 frames at 25 fps then 20 at 50 fps: 0.8 s at an average of 37.5 fps."""
    clip = tmp_path / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=50:duration=0.8",
           "-vf", r"select='lt(n\,20)*not(mod(n\,2))+gte(n\,20)'", "-fps_mode", "passthrough",
           "-c:v", "libx264", "-qp", "0", "-enc_time_base", "1/50", str(clip))  # fmt: skip
    info = probe_video(clip)
    assert info.fps == Fraction(75, 2)
    with VideoSource(info) as source:
        frames = list(source)
    assert len(frames) == 30  # 0.8 s * 37.5: the slow part repeats frames, the fast part drops some
    assert len({frame.tobytes() for frame in frames}) < 30


def test_late_start_keeps_the_frame_count(tmp_path: Path) -> None:
    """A video stream that starts 0.5 s into the file is not padded with copies of its first frame."""
    clip = lossless_clip(tmp_path / "clip.mkv", 10, "25")
    late = tmp_path / "late.mkv"
    ffmpeg("-itsoffset", "0.5", "-i", str(clip), "-c", "copy", str(late))
    assert "start 0.5" in stream_line(late) or probe_video(late).duration == pytest.approx(0.9, abs=0.05)
    with VideoSource(probe_video(late)) as source:
        assert len(list(source)) == 10


def test_seeking_gives_the_same_frames_as_reading_on(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001", "-frames:v", "60",
           "-c:v", "libx264", "-g", "12", "-bf", "2", str(clip))  # fmt: skip
    info = probe_video(clip)
    with VideoSource(info) as source:
        everything = list(source)
    for start in (1, 17, 59):
        with VideoSource(info, start=start, max_frames=5) as source:
            part = list(source)
            assert source.index == start + len(part)
        np.testing.assert_array_equal(np.stack(part), np.stack(everything[start : start + 5]))


def test_closing_early_stops_the_decoder(tmp_path: Path) -> None:
    clip = lossless_clip(tmp_path / "clip.mkv", 200, "25", size="320x240")
    source = VideoSource(probe_video(clip), queue_size=2)
    first = next(source)
    source.close()
    assert first.shape == (240, 320, 3)
    assert source._proc.returncode is not None


def test_full_range_bt601_video_keeps_its_colours_and_tags(tmp_path: Path) -> None:
    flat = np.zeros((48, 64, 3), np.uint8)
    flat[:] = (30, 140, 220)
    raw = flat.tobytes() * 5
    clip = tmp_path / "phone.mp4"
    ffmpeg("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "64x48", "-framerate", "25", "-i", "-",
           "-vf", "scale=out_color_matrix=bt601:out_range=pc", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuvj420p", "-colorspace", "smpte170m", "-color_range", "pc", str(clip),
           stdin=raw)  # fmt: skip
    portrait = open_portrait(clip)
    assert portrait.video is not None
    assert portrait.video.colour == ColourTags(matrix="smpte170m", range="pc")
    with VideoSource(portrait.video) as source:
        decoded = list(source)
    # swscale's full-range YUV -> RGB lands up to 2 levels off on red (218 where the stored YUV gives
    # 219.7 by the BT.601 formula): a property of ffmpeg, the same on every pass.
    np.testing.assert_allclose(decoded[2].reshape(-1, 3).mean(axis=0), (30, 140, 220), atol=2.5)

    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, colour=portrait.video.colour) as writer:
        writer.write_all(decoded)
    assert "pc, smpte170m" in stream_line(out)
    again = probe_video(out)
    assert again.colour == portrait.video.colour
    with VideoSource(again) as source:
        round_trip = list(source)
    np.testing.assert_allclose(
        round_trip[2].reshape(-1, 3).mean(axis=0), decoded[2].reshape(-1, 3).mean(axis=0), atol=1.5
    )


def test_untagged_video_is_written_as_bt709_limited(tmp_path: Path) -> None:
    clip = lossless_clip(tmp_path / "clip.mkv", 3, "25")
    info = probe_video(clip)
    assert info.colour == ColourTags()
    out = tmp_path / "out.mp4"
    with VideoSource(info) as source, VideoWriter(out, fps=25, colour=info.colour) as writer:
        writer.write_all(source)
    assert "tv, bt709" in stream_line(out)
