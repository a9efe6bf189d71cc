"""SadTalker KPDetector: official state-dict layout, stored anti-alias kernel, golden parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_sadtalker.keypoint_detector import KPDetector, default_antialias_kernel
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity, float32_steps

ATOL = 1e-5  # reference/sadtalker/README.md: kp_detector, all outputs


@pytest.fixture(scope="module")
def schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_kp_detector.json"


@pytest.fixture(scope="module")
def model(schema: Path) -> KPDetector:
    net = KPDetector()
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def test_state_dict_matches_official_schema(schema: Path) -> None:
    state = KPDetector().state_dict()
    official = load_schema(schema)
    assert len(official) == 75
    assert list(state) == list(official)  # same order as the official module registers them
    assert {k: tuple(v.shape) for k, v in state.items()} == official
    assert state["predictor.down_blocks.down0.norm.num_batches_tracked"].dtype == torch.int64


def test_default_kernel_is_the_official_gaussian(sadtalker_data: Path) -> None:
    facts = json.loads((sadtalker_data / "facts_sadtalker.json").read_text())
    official = torch.tensor(facts["facerender"]["kp_detector_antialias_default_kernel_13x13"])
    kernel = default_antialias_kernel(3, 0.25)
    assert kernel.shape == (3, 1, 13, 13)
    # float32 exp and a sum over 169 cells: the last bit may differ by CPU (one step is 7.5e-9 here).
    for channel in kernel:
        assert_parity(channel[0].numpy(), official.numpy(), float32_steps(official.numpy(), 16), "kernel")


def test_the_stored_kernel_replaces_the_default(model: KPDetector, schema: Path) -> None:
    stored = standin_state_dict(schema)["down.weight"]
    torch.testing.assert_close(model.down.weight, stored, rtol=0, atol=0)
    assert not torch.allclose(stored, default_antialias_kernel(3, 0.25))


def test_forward_matches_golden(model: KPDetector, sadtalker_data: Path) -> None:
    golden = load_golden(sadtalker_data / "golden_kp_detector.npz")
    image = torch.from_numpy(golden["input_image_u8_nhwc"]).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        keypoints = model(image)
    assert keypoints.shape == golden["out_value"].shape
    assert_parity(keypoints.numpy(), golden["out_value"], ATOL, "out_value")
