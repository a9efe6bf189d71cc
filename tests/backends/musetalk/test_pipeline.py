"""The frame loop on real stand-in networks: ping-pong order, pass-through without a face, paste region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from face_fixtures import bisenet_state_dict
from lipsync_kit.timeline import Timeline
from lipsync_musetalk.audio import AudioWindows, plan_windows
from lipsync_musetalk.bisenet import BiSeNet
from lipsync_musetalk.face_box import FaceBox
from lipsync_musetalk.models import load_unet, load_vae
from lipsync_musetalk.parsing import FaceParser
from lipsync_musetalk.pipeline import Networks, prepare_sources, render_frames
from standin import load_golden

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def parser() -> FaceParser:
    """Stand-in BiSeNet with the v1.5 CLI cheek widths."""
    net = BiSeNet()
    net.load_state_dict(bisenet_state_dict(), strict=True)
    return FaceParser(net.eval(), 90, 90, "cpu")


def test_frames_without_any_face_pass_through_without_a_network_call(parser: FaceParser) -> None:
    frames = [np.full((40, 50, 3), value, np.uint8) for value in (10, 20)]
    sources = prepare_sources(frames, [None, None], None, parser, "jaw", 10, 8)  # type: ignore[arg-type]
    plan = plan_windows(5 * 640, 25)  # 5 frames at 25 fps
    windows = AudioWindows(torch.zeros(plan.actual_steps, 5, 384), plan)
    pingpong = Timeline("pingpong", 2, 5)  # MuseTalk's default
    out = list(render_frames(frames, pingpong, sources, windows, None, batch_size=2))  # type: ignore[arg-type]
    assert [int(frame[0, 0, 0]) for frame in out] == [10, 20, 20, 10, 10]
    cut = Timeline("cut", 2, 5)
    out = list(render_frames(frames, cut, sources, windows, None, batch_size=2))  # type: ignore[arg-type]
    assert [int(frame[0, 0, 0]) for frame in out] == [10, 20]


@pytest.fixture(scope="module")
def networks(unet_standin: Path, vae_standin: Path) -> Networks:
    unet = load_unet(unet_standin / "unet_standin.pth", unet_standin / "musetalk.json", CPU)
    vae = load_vae(vae_standin / "vae_standin.safetensors", vae_standin / "vae_config.json", CPU)
    return Networks(unet, vae)


def test_a_face_in_some_frames_only(networks: Networks, parser: FaceParser, musetalk_data: Path) -> None:
    """Frame 0 has a face, frame 1 none: output 0 is re-drawn inside its box only, the others pass through."""
    golden = load_golden(musetalk_data / "golden_latents_unet_vae.npz")
    frames = [golden["frames_bgr"][0], golden["frames_bgr"][1]]
    box = FaceBox(*(int(v) for v in golden["boxes_x1y1x2y2"][0]))
    with torch.inference_mode():
        sources = prepare_sources(frames, [box, None], networks.vae, parser, "jaw", 10, 8)
        plan = plan_windows(3 * 640, 25)  # 3 frames: sources 0, 1, 1
        states = torch.from_numpy(
            load_golden(musetalk_data / "golden_audio.npz")["hidden_states_stacked_first100"][0]
        )
        windows = AudioWindows(states[: plan.actual_steps], plan)
        pingpong = Timeline("pingpong", 2, 3)
        out = list(render_frames(frames, pingpong, sources, windows, networks, batch_size=8))
    assert len(out) == 3
    np.testing.assert_array_equal(out[1], frames[1])
    np.testing.assert_array_equal(out[2], frames[1])
    paste = sources.paste_boxes[0]
    assert paste == FaceBox(box.x1, box.y1, box.x2, box.y2 + 10)
    _, crop_y1, _, crop_y2 = sources.masks[0].crop_box
    changed = np.argwhere((out[0] != frames[0]).any(axis=2))
    assert len(changed) > 0
    # Only below the crop's centre row and inside the face box, each widened by the feather of the mask's
    # Gaussian blur (its odd kernel is 5 % of the crop's side).
    reach = sources.masks[0].mask.shape[1] // 40 + 1
    assert changed[:, 0].min() >= (crop_y1 + crop_y2) // 2 - reach
    assert changed[:, 1].min() >= paste.x1 - reach and changed[:, 1].max() < paste.x2 + reach
    assert changed[:, 0].max() < paste.y2 + reach
