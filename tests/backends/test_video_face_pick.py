"""lipsync_kit.face_pick: one person followed through a two-person video, across a scene cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lipsync_kit.face_pick import FacePicker, FaceRule
from lipsync_kit.face_track import detect_frames, downscaled
from lipsync_kit.video_source import VideoSource, probe_video
from video_scenes import find_people, make_two_person_scene, write_lossless


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory):
    frames, where = make_two_person_scene()
    return where, write_lossless(frames, tmp_path_factory.mktemp("two") / "two.mkv")


def track(path: Path, rule: FaceRule, scale: float = 1.0):
    with VideoSource(probe_video(path)) as source:
        return detect_frames(source, downscaled(find_people, scale), batch_size=4, picker=FacePicker(rule))


@pytest.mark.parametrize(
    ("rule", "person"),
    [
        (FaceRule(index=0), "A"),  # the leftmost in the first frame
        (FaceRule(index=1), "B"),
        (FaceRule(point=(140.0, 60.0)), "B"),  # under the point
        (FaceRule(point=(0.0, 0.0)), "A"),  # nearest to it
    ],
)
def test_the_chosen_person_is_followed_as_they_move_and_across_the_cut(
    two_people, rule: FaceRule, person: str
) -> None:
    where, path = two_people
    found = track(path, rule)
    assert found.found.all()
    assert np.flatnonzero(found.cuts).tolist() == [10]
    np.testing.assert_array_equal(found.boxes, np.array(where[person]))  # in shot 2 they swapped sides


def test_downscaled_tracking_stays_within_a_pixel_or_two(two_people) -> None:
    where, path = two_people
    found = track(path, FaceRule(index=0), scale=0.5)
    assert np.abs(found.boxes - np.array(where["A"])).max() <= 2


def test_an_index_past_the_faces_finds_nobody() -> None:
    frames, _where = make_two_person_scene(3, 0)
    picker = FacePicker(FaceRule(index=2))
    assert [picker.choose(f, d, False) for f, d in zip(frames, find_people(frames), strict=True)] == [
        None
    ] * 3


def test_boxes_come_clipped_at_zero_and_truncated_like_the_detector_api() -> None:
    frame = np.zeros((50, 50, 3), np.uint8)
    box = FacePicker(FaceRule(index=0)).choose(
        frame, np.array([[-3.7, 2.9, 30.6, 40.2, 0.9]], np.float32), False
    )
    assert box == (0, 2, 30, 40)
