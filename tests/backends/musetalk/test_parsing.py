"""BiSeNet face parsing and MuseTalk's mask modes against the official ``FaceParsing`` run.

Tolerances from tests/data/musetalk/README.md: BiSeNet output atol 1e-4; labels exact outside the pixels whose
top-2 logit margin is below 1e-4; masks exact (from the stored labels, or the designed label map).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from face_fixtures import MUSETALK_DATA, DesignedLabels, bisenet, bisenet_state_dict, face_parser, golden
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_musetalk.bisenet import BiSeNet
from lipsync_musetalk.parsing import (
    CHEEK_EROSION_SIZE,
    FaceParser,
    cheek_band_mask,
    jaw_dilation_kernel,
    load_bisenet,
    parsing_mask,
)
from PIL import Image
from tolerances import assert_parity

__all__ = ["bisenet", "face_parser"]  # fixtures used here

OUT_ATOL = 1e-4


@pytest.fixture(scope="module")
def blending() -> dict[str, np.ndarray]:
    return golden("golden_blending")


def test_parameters_are_named_shaped_and_typed_as_79999_iter() -> None:
    schema = json.loads((MUSETALK_DATA / "schema_bisenet.json").read_text())
    expected = {key: (tuple(shape), dtype) for key, shape, dtype in schema["state_dict"]}
    net = BiSeNet()
    actual = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
    assert actual == expected
    assert sum(p.numel() for p in net.parameters()) == schema["num_parameters"]


def test_network_matches_official(bisenet: BiSeNet) -> None:
    net_golden = golden("golden_bisenet_net")
    with torch.inference_mode():
        out = bisenet(torch.from_numpy(net_golden["input"]))
    assert_parity(out.numpy(), net_golden["out"], OUT_ATOL, "bisenet out")


def test_structuring_elements_match_official(blending: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(jaw_dilation_kernel(), blending["jaw_dilate_kernel"])
    np.testing.assert_array_equal(cheek_band_mask(90, 90), blending["cheek_mask_90"])
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, CHEEK_EROSION_SIZE)
    np.testing.assert_array_equal(ellipse, blending["cheek_kernel"])


@pytest.mark.parametrize("box", ["in", "edge"])
def test_network_input_and_labels_match_official(
    face_parser: FaceParser, blending: dict[str, np.ndarray], box: str
) -> None:
    net_input = face_parser.net_input(Image.fromarray(blending[f"{box}_crop_rgb"]))
    np.testing.assert_array_equal(net_input.numpy(), blending[f"{box}_net_input"])
    labels = face_parser.labels(net_input)[0]
    settled = ~blending[f"{box}_labels512_ambiguous"]
    np.testing.assert_array_equal(labels[settled], blending[f"{box}_labels512"][settled])


@pytest.mark.parametrize(("box", "mode"), [("in", "raw"), ("in", "neck"), ("in", "jaw"), ("edge", "jaw")])
def test_masks_of_official_labels(
    face_parser: FaceParser, blending: dict[str, np.ndarray], box: str, mode: str
) -> None:
    mask = parsing_mask(blending[f"{box}_labels512"], mode, face_parser.cheek_mask)
    np.testing.assert_array_equal(mask, blending[f"{box}_{mode}_mask512"])


@pytest.mark.parametrize(
    ("name", "mode", "cheek_width"),
    [("cw90_raw", "raw", 90), ("cw90_neck", "neck", 90), ("cw90_jaw", "jaw", 90), ("cw80_jaw", "jaw", 80)],
)
def test_masks_of_designed_face_map(
    blending: dict[str, np.ndarray], name: str, mode: str, cheek_width: int
) -> None:
    """Through the whole parser call, with a network that outputs the designed label map."""
    parser = FaceParser(DesignedLabels(blending["syn_labels512"]), cheek_width, cheek_width, "cpu")
    mask = parser(Image.fromarray(blending["in_crop_rgb"]), mode)
    np.testing.assert_array_equal(mask, blending[f"syn_{name}_mask512"])
    assert set(np.unique(mask)) == {0, 255}


def test_jaw_mode_needs_the_cheek_mask_and_modes_are_checked() -> None:
    labels = np.ones((512, 512), np.uint8)
    with pytest.raises(ValueError, match="cheek"):
        parsing_mask(labels, "jaw")
    with pytest.raises(ValueError, match="unknown parsing mode 'chin'"):
        parsing_mask(labels, "chin")  # type: ignore[arg-type]


def test_load_bisenet_reads_the_raw_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "79999_iter.pth"
    state = bisenet_state_dict()
    torch.save(state, path)
    net = load_bisenet(path, "cpu")
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_bisenet_refuses_another_network(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save({k.removeprefix("cp.resnet."): v for k, v in bisenet_state_dict().items()}, path)
    with pytest.raises(BackendError) as caught:
        load_bisenet(path, "cpu")
    assert caught.value.code == ErrorCode.BAD_CHECKPOINT
    assert "missing keys" in str(caught.value)
