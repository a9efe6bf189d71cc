"""lipsync_kit.face_track and lipsync_kit.detection_cache on a synthetic two-shot video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.detection_cache import DetectionCache
from lipsync_kit.face_track import Detections, ShotDetector, detect_frames, downscaled, segments
from lipsync_kit.video_source import VideoSource, probe_video
from video_scenes import find_portrait, make_scene, write_lossless


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    scene = make_scene()
    return scene, write_lossless(scene.frames, tmp_path_factory.mktemp("scene") / "scene.mkv")


def test_the_stand_in_detector_finds_the_scene_boxes() -> None:
    scene = make_scene()
    assert find_portrait(scene.frames) == scene.boxes


def test_shot_detector_marks_the_cut_and_not_the_pan() -> None:
    scene = make_scene()
    shots = ShotDetector()
    cuts = [shots.is_cut(frame) for frame in scene.frames]
    assert [i for i, cut in enumerate(cuts) if cut] == [scene.cut_at]


def test_detection_pass_streams_the_video(scene_file) -> None:
    scene, path = scene_file
    done: list[int] = []
    with VideoSource(probe_video(path)) as source:
        found = detect_frames(source, find_portrait, batch_size=4, expected=100, progress=done.append)
    assert len(found) == 22 and found.complete  # fewer than asked for: the video ended
    assert done == [4, 8, 12, 16, 20, 22]
    assert found.found.tolist() == [box is not None for box in scene.boxes]
    assert found.frames_without_face == 1
    expected = np.array([box or (0, 0, 0, 0) for box in scene.boxes])
    np.testing.assert_array_equal(found.boxes, expected)
    assert np.flatnonzero(found.cuts).tolist() == [scene.cut_at]

    with VideoSource(probe_video(path), max_frames=10) as source:
        head = detect_frames(source, find_portrait, batch_size=4, expected=10)
    assert len(head) == 10 and not head.complete


def test_segments_break_at_face_less_frames_and_cuts() -> None:
    found = np.array([True, True, False, True, True, True, True, False, False])
    cuts = np.zeros(9, bool)
    cuts[5] = True
    assert segments(found, cuts) == [slice(0, 2), slice(3, 5), slice(5, 7)]


def test_downscaled_detection_scales_boxes_back() -> None:
    scene = make_scene()
    half = downscaled(find_portrait, 0.5)
    for got, want in zip(half(scene.frames), scene.boxes, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            assert np.abs(np.subtract(got, want)).max() <= 2  # one pixel at half size


def _records(count: int, complete: bool) -> Detections:
    boxes = np.arange(count * 4, dtype=np.int64).reshape(count, 4)
    return Detections(boxes, np.ones(count, bool), np.zeros(count, bool), complete)


def test_cache_round_trip_and_keys(tmp_path: Path) -> None:
    video = tmp_path / "clip.mkv"
    video.write_bytes(b"frames" * 100)
    cache = DetectionCache(tmp_path / "cache")
    key = cache.key(video, {"detect_scale": 1.0})
    assert cache.load(key, 5) is None
    cache.save(key, _records(8, complete=False))
    hit = cache.load(key, 5)
    assert hit is not None and len(hit) == 5 and not hit.complete
    np.testing.assert_array_equal(hit.boxes, _records(5, False).boxes)
    assert cache.load(key, 9) is None  # an incomplete entry cannot answer a longer request
    assert cache.key(video, {"detect_scale": 0.5}) != key
    video.write_bytes(b"frames" * 99 + b"change")
    assert cache.key(video, {"detect_scale": 1.0}) != key


def test_a_complete_entry_answers_any_length_and_a_broken_one_counts_as_absent(tmp_path: Path) -> None:
    cache = DetectionCache(tmp_path)
    cache.save("k", _records(6, complete=True))
    hit = cache.load("k", 100)
    assert hit is not None and len(hit) == 6 and hit.complete
    (tmp_path / "k.npz").write_bytes(b"not a zip")
    assert cache.load("k", 6) is None
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]  # no temp files left


def test_no_folder_caches_nothing(tmp_path: Path) -> None:
    cache = DetectionCache(None)
    cache.save("k", _records(2, True))
    assert cache.load("k", 2) is None
