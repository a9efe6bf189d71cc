"""Wav2Lip dubbing a video portrait through the kit's streaming engine (in-process worker render).

The synthetic two-shot video of tests/backends/video_scenes.py at 30000/1001 fps; stand-in generator
weights; PNG output so every pixel can be compared with the decoded source.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from lipsync_kit.audio import load_audio
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_kit.face_track import detect_frames
from lipsync_kit.timeline import Timeline
from lipsync_kit.video import VideoWriter
from lipsync_kit.video_source import VideoSource, probe_video
from lipsync_kit.worker import Reporter
from lipsync_wav2lip.backend import Wav2LipBackend
from lipsync_wav2lip.dubbing import dub_video
from lipsync_wav2lip.features import SAMPLE_RATE, melspectrogram
from lipsync_wav2lip.models import load_generator
from lipsync_wav2lip.tracking import crop_track
from standin import standin_state_dict
from video_scenes import find_portrait, make_scene, write_lossless

SPEECH = Path(__file__).resolve().parents[2] / "data" / "speech" / "hello_there.wav"  # 1.03 s
NTSC = Fraction(30000, 1001)
SPEECH_FRAMES = 31  # ceil(1.03 s * 29.97)
BOX = (20, 100, 60, 140)  # TOP BOTTOM LEFT RIGHT around the shot-2 portrait


@pytest.fixture(scope="module")
def checkpoint(wav2lip_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w2l") / "wav2lip.pth"
    state = standin_state_dict(wav2lip_data / "schema_wav2lip.json")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory: pytest.TempPathFactory):
    scene = make_scene()
    return scene, write_lossless(scene.frames, tmp_path_factory.mktemp("scene") / "scene.mkv")


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(f)) for f in sorted(folder.glob("*.png"))]


def render(checkpoint: Path, face: Path, out: Path, **options) -> dict:
    out.mkdir()
    _output, stats = Wav2LipBackend("cpu").render(
        {
            "face": str(face),
            "audio": str(SPEECH),
            "output": str(out / "%04d.png"),
            "format": "png",
            "paste": "exact",
            "weights": {"checkpoint": str(checkpoint)},
            **options,
        },
        Reporter(lambda _event: None, "test"),
    )
    return stats


def outside(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    top, bottom, left, right = box
    mask = np.ones(shape[:2], bool)
    mask[top:bottom, left:right] = False
    return mask


@pytest.mark.parametrize(
    ("mode", "frames"),
    [("loop", SPEECH_FRAMES), ("pingpong", SPEECH_FRAMES), ("freeze", SPEECH_FRAMES), ("cut", 22)],
)
def test_duration_modes_map_output_frames_to_source_frames(
    checkpoint: Path, scene_video, tmp_path: Path, mode: str, frames: int
) -> None:
    scene, video = scene_video
    stats = render(checkpoint, video, tmp_path / "out", box=list(BOX), duration_mode=mode)
    assert stats["frames"] == frames and stats["fps"] == pytest.approx(float(NTSC), abs=1e-12)
    assert stats["source_frames"] == 22 and stats["detection"] == "box" and stats["duration_mode"] == mode
    assert stats["frames_without_face"] == 0 and stats["peak_rss_mb"] > 0
    rendered = read_pngs(tmp_path / "out")
    assert len(rendered) == frames
    mask = outside(BOX, rendered[0].shape)
    timeline = Timeline(mode, 22, SPEECH_FRAMES)  # type: ignore[arg-type]
    for index, frame in enumerate(rendered):
        source = scene.frames[timeline.source_index(index)]
        np.testing.assert_array_equal(frame[mask], source[mask])
        assert (frame[~mask] != source[~mask]).any()  # the mouth was re-drawn


def test_loop_is_the_default(checkpoint: Path, scene_video, tmp_path: Path) -> None:
    _scene, video = scene_video
    assert render(checkpoint, video, tmp_path / "out", box=list(BOX))["duration_mode"] == "loop"


def test_face_less_frames_pass_through_and_boxes_follow_the_pan_within_each_shot(
    checkpoint: Path, scene_video, tmp_path: Path
) -> None:
    scene, video = scene_video
    info = probe_video(video)
    with VideoSource(info) as source:
        found = detect_frames(source, find_portrait, batch_size=8)
    track = crop_track(found, (0, 10, 0, 0), (112, 160), smooth=True)
    assert track.frames_without_face == 1 and not track.has_face[5]
    for index, want in enumerate(scene.boxes):
        if want is not None:  # smoothing keeps to the shot: never pulled towards the other shot's box
            x1, y1, x2, y2 = want
            assert np.abs(track.coords[index] - (y1, min(y2 + 10, 112), x1, x2)).max() <= 6, index

    mel = melspectrogram(load_audio(SPEECH, SAMPLE_RATE))
    timeline = Timeline("loop", len(found), SPEECH_FRAMES)
    (tmp_path / "out").mkdir()
    with VideoWriter(tmp_path / "out" / "%04d.png", fps=float(NTSC)) as writer:
        dub_video(
            generator=load_generator(checkpoint, "cpu"),
            device=torch.device("cpu"),
            video=info,
            prepare=lambda frame: frame,
            timeline=timeline,
            track=track,
            mel=mel,
            fps=float(NTSC),
            writer=writer,
            batch_size=4,
            paste_mode="exact",
        )
    rendered = read_pngs(tmp_path / "out")
    assert len(rendered) == SPEECH_FRAMES
    for index, frame in enumerate(rendered):
        source = scene.frames[timeline.source_index(index)]
        box = track.box(timeline.source_index(index))
        if box is None:
            np.testing.assert_array_equal(frame, source)  # passed through unchanged
        else:
            mask = outside(box, frame.shape)
            np.testing.assert_array_equal(frame[mask], source[mask])


def test_a_video_where_no_frame_has_a_face_is_no_face(
    tmp_path: Path, wav2lip_data: Path, checkpoint: Path
) -> None:
    blank = [np.full((112, 160, 3), 90, np.uint8)] * 4
    video = write_lossless(blank, tmp_path / "blank.mkv")
    detector = tmp_path / "blind.pth"
    state = standin_state_dict(wav2lip_data / "schema_s3fd.json")
    for key in [k for k in state if "_mbox_conf" in k]:
        state[key] = torch.zeros_like(state[key]) if key.endswith("weight") else _background_bias(state[key])
    torch.save(state, detector)
    out = tmp_path / "out"
    with pytest.raises(BackendError) as err:
        render(checkpoint, video, out, weights={"checkpoint": str(checkpoint), "detector": str(detector)})
    assert err.value.code == ErrorCode.NO_FACE
    assert list(out.iterdir()) == []


def _background_bias(bias: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(bias, 20.0)
    out[-1] = -20.0  # the face channel is the last: never scores
    return out


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"face_at": [10, 20, 30]}, "2 numbers such as X,Y"),
        ({"face_at": [10, 20], "face_index": 1}, "not both"),
    ],
)
def test_bad_face_choice_is_bad_option(
    checkpoint: Path, scene_video, tmp_path: Path, wav2lip_data: Path, options: dict, words: str
) -> None:
    _scene, video = scene_video
    detector = tmp_path / "s3fd.pth"
    torch.save(standin_state_dict(wav2lip_data / "schema_s3fd.json"), detector)
    out = tmp_path / "out"
    with pytest.raises(BackendError) as err:
        render(
            checkpoint,
            video,
            out,
            weights={"checkpoint": str(checkpoint), "detector": str(detector)},
            **options,
        )
    assert err.value.code == ErrorCode.BAD_OPTION and words in err.value.message
    assert list(out.iterdir()) == []
