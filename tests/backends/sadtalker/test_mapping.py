"""SadTalker MappingNet (crop: 70 channels, full: 73): official state-dict layout and golden parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_sadtalker.head_pose import HeadParams
from lipsync_sadtalker.mapping import COEFF_CHANNELS_CROP, COEFF_CHANNELS_FULL, MappingNet
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity

ATOL = 1e-5  # reference/sadtalker/README.md: mapping_*, all outputs

VARIANTS = {"crop": COEFF_CHANNELS_CROP, "full": COEFF_CHANNELS_FULL}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def schema(sadtalker_data: Path, variant: str) -> Path:
    return sadtalker_data / f"schema_mapping_{variant}.json"


@pytest.fixture(scope="module")
def model(schema: Path, variant: str) -> MappingNet:
    net = MappingNet(VARIANTS[variant])
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def test_state_dict_matches_official_schema(schema: Path, variant: str) -> None:
    ours = {k: tuple(v.shape) for k, v in MappingNet(VARIANTS[variant]).state_dict().items()}
    official = load_schema(schema)
    assert len(official) == 18
    assert list(ours) == list(official)  # same order as the official module registers them
    assert ours == official


def test_forward_matches_golden(model: MappingNet, sadtalker_data: Path, variant: str) -> None:
    golden = load_golden(sadtalker_data / f"golden_mapping_{variant}.npz")
    with torch.inference_mode():
        head = model(torch.from_numpy(golden["input_3dmm"]))
    assert isinstance(head, HeadParams)
    for name, value in head._asdict().items():
        assert_parity(value.numpy(), golden[f"out_{name}"], ATOL, name)
