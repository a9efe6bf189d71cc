"""The one parser of ffmpeg's stream dump, on dumps ffmpeg printed, and `probe` on real files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lipsync_kit._ffmpeg import Stream, parse_input
from lipsync_kit.probe import ffmpeg_exe, probe

NTSC = 30000 / 1001

MP4_DUMP = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:clip.mp4':
  Metadata:
    major_brand     : isom
  Duration: 00:01:02.50, start: 0.000000, bitrate: 1043 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), \
1920x1080 [SAR 1:1 DAR 16:9], 900 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
      Metadata:
        handler_name    : VideoHandler
  Stream #0:1[0x2](eng): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s (default)
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Stream #0:0(und): Video: wrapped_avframe, yuv420p(tv, bt709, progressive), 1080x1920, q=2-31, 30 fps
"""

PNG_DUMP = """\
Input #0, png_pipe, from 'face.png':
  Duration: N/A, bitrate: N/A
  Stream #0:0: Video: png, rgb24(pc), 256x256, 25 tbr, 25 tbn
At least one output file must be specified
"""


def test_parse_input_reads_container_duration_and_streams() -> None:
    dump = parse_input(MP4_DUMP)
    assert dump.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert dump.duration == pytest.approx(62.5)
    assert dump.streams == (
        Stream("video", "h264", (1920, 1080), pytest.approx(NTSC, abs=1e-12), None),  # type: ignore[arg-type]
        Stream("audio", "aac", None, None, 44100),
    )  # the Output section (rotated 1080x1920, 30 fps) is not the input's


def test_parse_input_of_a_still_and_of_nothing() -> None:
    dump = parse_input(PNG_DUMP)
    assert (dump.container, dump.duration) == ("png_pipe", None)
    assert dump.first("video") == Stream("video", "png", (256, 256), 25.0, None)
    assert dump.first("audio") is None
    empty = parse_input("file:nope.mp4: No such file or directory\n")
    assert (empty.container, empty.duration, empty.streams) == (None, None, ())


def test_probe_gives_the_exact_ntsc_rate(tmp_path: Path) -> None:
    clip = tmp_path / "ntsc.mkv"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001:duration=0.5",
         "-c:v", "ffv1", str(clip)],
        check=True,
    )  # fmt: skip
    info = probe(clip)
    assert info.video_codec == "ffv1" and (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(NTSC, abs=1e-9) and not info.has_audio
    assert info.duration == pytest.approx(0.5, abs=0.05)
    missing = probe(tmp_path / "absent.wav")
    assert not missing.has_video and not missing.has_audio and "No such file" in (missing.error or "")
