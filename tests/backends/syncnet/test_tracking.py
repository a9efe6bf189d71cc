"""Scene cuts, face tracks and crops against the official run_pipeline.py goldens."""

from __future__ import annotations

import numpy as np
from lipsync_syncnet.tracking import (
    SceneCutter,
    Track,
    crop_face,
    downscale_factor,
    scenes_from_cuts,
    smooth_track,
    track_faces,
)
from syncnet_clips import clip_frames

NUM_FRAMES = 40
MIN_TRACK = 20  # the goldens' setting (the official default of 100 needs a 4 s clip)


def synthetic_detections(count: int) -> list[np.ndarray]:
    """As make_syncnet_goldens.py: a drifting face (missing at 7, 8, 20) and a small distractor."""
    frames = []
    for k in range(count):
        faces = []
        if k not in (7, 8, 20):
            faces.append(
                [58.5 + 0.7 * k, 31.25 + 0.3 * (k % 4), 196.0 + 0.7 * k, 184.5 - 0.2 * (k % 3), 0.99]
            )
        if k % 3 == 0:
            faces.append([5.0, 200.0, 45.0, 240.0, 0.95])
        frames.append(np.array(faces).reshape(-1, 5))
    return frames


def scene_frames(base: np.ndarray) -> list[np.ndarray]:
    frames = clip_frames(base, 48)
    mirrored = {k for k in range(48) if 18 <= k < 25 or k >= 36}
    return [np.ascontiguousarray(f[:, ::-1] // 2 + 60) if k in mirrored else f for k, f in enumerate(frames)]


def test_scene_cuts_match_content_detector(portrait: np.ndarray, golden: dict[str, np.ndarray]) -> None:
    cutter = SceneCutter(width=portrait.shape[1])
    for frame in scene_frames(portrait):
        cutter.add(frame)
    np.testing.assert_allclose(cutter.content, golden["scene_content_val"], rtol=0, atol=1e-9)
    assert cutter.cuts == golden["scene_cuts"].tolist() == [18, 36]
    assert scenes_from_cuts(cutter.cuts, 48) == [(0, 18), (18, 36), (36, 48)]
    assert scenes_from_cuts([], 48) == [(0, 48)]


def test_downscale_factors() -> None:
    assert [downscale_factor(w) for w in (256, 400, 640, 1280, 1920, 3840)] == [1, 2, 3, 5, 6, 12]


def test_track_matches_official(golden: dict[str, np.ndarray]) -> None:
    tracks = track_faces(synthetic_detections(NUM_FRAMES), 0, min_track=MIN_TRACK)
    assert len(tracks) == 1  # the distractor is too small and too short
    np.testing.assert_array_equal(tracks[0].frames, golden["track_frame"])
    np.testing.assert_allclose(tracks[0].boxes, golden["track_bbox"], rtol=0, atol=1e-9)


def test_short_tracks_are_dropped() -> None:
    assert track_faces(synthetic_detections(NUM_FRAMES), 0, min_track=NUM_FRAMES) == []


def test_crops_match_official(portrait: np.ndarray, golden: dict[str, np.ndarray]) -> None:
    track = Track(golden["track_frame"], golden["track_bbox"])
    x, y, s = smooth_track(track)
    np.testing.assert_allclose(x, golden["proc_x"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, golden["proc_y"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s, golden["proc_s"], rtol=0, atol=1e-9)
    frames = clip_frames(portrait, NUM_FRAMES)
    crops = np.stack([crop_face(frames[f], *v) for f, *v in zip(track.frames, x, y, s, strict=True)])
    np.testing.assert_array_equal(crops[:6], golden["crops_head"])
    np.testing.assert_array_equal(crops.reshape(NUM_FRAMES, -1).sum(axis=1), golden["crop_sums"])


def test_crop_outside_the_frame_is_grey() -> None:
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    crop = crop_face(frame, x=-500.0, y=-500.0, s=40.0)
    assert crop.shape == (224, 224, 3)
    assert (crop == 110).all()
