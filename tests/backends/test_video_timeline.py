"""lipsync_kit.timeline and lipsync_kit.frame_cursor: which source frame each output frame shows, decoded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from lipsync_kit.frame_cursor import FrameCursor
from lipsync_kit.options import DURATION_MODES
from lipsync_kit.timeline import Timeline
from lipsync_kit.video_source import VideoSource, probe_video


def test_loop_is_the_official_wav2lip_modulo() -> None:
    timeline = Timeline("loop", 4, 10)
    assert len(timeline) == 10
    assert timeline.source_indices().tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_pingpong_is_the_official_musetalk_cycle() -> None:
    """MuseTalk cycles ``frames + frames[::-1]``: both end frames show twice in a row."""
    timeline = Timeline("pingpong", 4, 12)
    assert timeline.source_indices().tolist() == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3]
    cycle = [*range(4), *reversed(range(4))]
    assert timeline.source_indices(5, 12).tolist() == [cycle[i % 8] for i in range(5, 12)]


def test_freeze_holds_the_last_frame() -> None:
    assert Timeline("freeze", 3, 6).source_indices().tolist() == [0, 1, 2, 2, 2, 2]


@pytest.mark.parametrize(("source", "speech", "length"), [(3, 6, 3), (6, 3, 3)])
def test_cut_stops_at_the_shorter(source: int, speech: int, length: int) -> None:
    timeline = Timeline("cut", source, speech)
    assert len(timeline) == length
    assert timeline.source_indices().tolist() == list(range(length))


@pytest.mark.parametrize("mode", DURATION_MODES)
def test_a_long_video_plays_straight_and_a_still_repeats(mode: str) -> None:
    assert Timeline(mode, 10, 4).source_indices().tolist() == [0, 1, 2, 3]  # type: ignore[arg-type]
    assert set(Timeline(mode, 1, 5).source_indices().tolist()) == {0}  # type: ignore[arg-type]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="duration mode"):
        Timeline("bounce", 3, 3)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def numbered_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 distinct frames, H.264 with B-frames and a keyframe every 8 frames, 30000/1001 fps."""
    path = tmp_path_factory.mktemp("cursor") / "clip.mp4"
    argv = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=96x64:rate=30000/1001", "-frames:v", "40",
            "-c:v", "libx264", "-g", "8", "-bf", "2", str(path)]  # fmt: skip
    subprocess.run(argv, check=True)
    return path


@pytest.mark.parametrize("mode", DURATION_MODES)
def test_cursor_serves_every_mode_with_the_decoded_frames(numbered_clip: Path, mode: str) -> None:
    info = probe_video(numbered_clip)
    with VideoSource(info) as source:
        everything = list(source)
    assert len(everything) == 40
    timeline = Timeline(mode, 40, 130)  # type: ignore[arg-type]
    with FrameCursor(info) as cursor:
        cursor.chunk_frames = 16  # several backward chunks in the pingpong pass
        for out_index, frame in enumerate(cursor.frames(timeline.source_indices())):
            np.testing.assert_array_equal(frame, everything[timeline.source_index(out_index)])
        opened = cursor.decoders_opened
    # loop: one decoder per pass; pingpong: per pass forwards, plus ceil(40/16) chunks per pass backwards
    assert opened <= {"loop": 4, "pingpong": 2 + 2 * 3, "freeze": 1, "cut": 1}[mode]
