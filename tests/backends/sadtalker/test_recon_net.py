"""SadTalker 3DMM recon net: official state-dict layout, parity with the official forward, saved rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_sadtalker.alignment import TransParams, align_for_recon
from lipsync_sadtalker.crop import crop_source
from lipsync_sadtalker.recon_net import COEFF_SLICES, NUM_COEFFS, ReconNet, coefficients_73, to_input
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity

ATOL = 1e-4  # reference/sadtalker/README.md: face_3drecon coeffs, align coeff_3dmm_73 / full_3dmm_257
CROP_RTOL = 1e-6  # reference/sadtalker/README.md: align trans_params, rtol 1e-6


@pytest.fixture(scope="module")
def schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_face_3drecon.json"


@pytest.fixture(scope="module")
def model(schema: Path) -> ReconNet:
    net = ReconNet()
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def _regress(net: ReconNet, aligned_u8: np.ndarray, device: str = "cpu") -> np.ndarray:
    with torch.inference_mode():
        return net(to_input(aligned_u8, device)).cpu().numpy()


def test_state_dict_matches_official_schema(schema: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in ReconNet().state_dict().items()}
    official = load_schema(schema)
    assert len(official) == 332
    assert list(ours) == list(official)  # same keys, same order
    assert ours == official


def test_strict_load_copies_the_standin_weights(model: ReconNet, schema: Path) -> None:
    weights = standin_state_dict(schema)
    state = model.state_dict()
    for key in (
        "backbone.conv1.weight",
        "backbone.layer3.0.downsample.1.running_var",
        "backbone.layer4.2.bn3.num_batches_tracked",
        "final_layers.6.bias",
    ):
        torch.testing.assert_close(state[key], weights[key], rtol=0, atol=0)
    assert state["backbone.bn1.num_batches_tracked"].shape == ()
    assert state["backbone.bn1.num_batches_tracked"].dtype == torch.int64


def test_forward_matches_golden(model: ReconNet, sadtalker_data: Path) -> None:
    golden = load_golden(sadtalker_data / "golden_face_3drecon.npz")
    got = _regress(model, golden["input_image_u8_nhwc"])
    assert got.shape == (2, NUM_COEFFS)
    assert_parity(got, golden["out_coeffs_257"], ATOL, "out_coeffs_257")


@pytest.mark.parametrize("mode", ["crop", "extcrop"])
def test_stage1_end_to_end_matches_golden(model: ReconNet, sadtalker_data: Path, mode: str) -> None:
    # Source image + detector landmarks -> crop -> (landmarks on the crop) -> alignment -> coefficients.
    golden = load_golden(sadtalker_data / "golden_align.npz")
    frame, _ = crop_source(golden["input_image_u8_hwc_rgb"], golden["input_lm68_detector_xy"], mode, 256)
    aligned, params = align_for_recon(frame, golden[f"{mode}_lm256_given"])

    full = _regress(model, aligned)
    saved = coefficients_73(full, params)

    assert_parity(full, golden[f"{mode}_full_3dmm_257"], ATOL, "full_3dmm_257")
    assert saved.shape == (1, 73) and saved.dtype == np.float32
    expected = golden[f"{mode}_coeff_3dmm_73"]
    assert_parity(saved[:, :70], expected[:, :70], ATOL, "coeff_3dmm_73 exp, angle, trans")
    # s, tx, ty: the crop's trans_params (float64 from the landmark fit, up to 129), not network outputs.
    np.testing.assert_allclose(saved[:, 70:], expected[:, 70:], rtol=CROP_RTOL, atol=0, err_msg="s, tx, ty")


def test_coefficients_73_picks_exp_angle_trans_then_crop_params() -> None:
    coeffs = np.arange(2 * NUM_COEFFS, dtype=np.float32).reshape(2, NUM_COEFFS)
    params = [TransParams(256, 256, 1.25, 120.5, 130.25), TransParams(256, 256, 0.5, 1.0, 2.0)]
    saved = coefficients_73(torch.from_numpy(coeffs), params)

    assert saved.shape == (2, 73)
    np.testing.assert_array_equal(saved[:, :64], coeffs[:, 80:144])
    np.testing.assert_array_equal(saved[:, 64:67], coeffs[:, 224:227])
    np.testing.assert_array_equal(saved[:, 67:70], coeffs[:, 254:257])
    np.testing.assert_array_equal(saved[:, 70:], [[1.25, 120.5, 130.25], [0.5, 1.0, 2.0]])
    np.testing.assert_array_equal(coefficients_73(coeffs[0], params[0]), saved[:1])
    layout = {"exp": slice(80, 144), "angle": slice(224, 227), "trans": slice(254, 257)}
    assert {name: COEFF_SLICES[name] for name in layout} == layout
    with pytest.raises(ValueError, match="2 coefficient rows but 1 alignments"):
        coefficients_73(coeffs, params[:1])


def test_input_scaling_is_exact_and_batched() -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    got = to_input(images)
    expected = torch.tensor(images / 255.0, dtype=torch.float32).permute(0, 3, 1, 2)  # as upstream
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(to_input(images[0]), expected[:1], rtol=0, atol=0)


def test_rejects_wrong_input_size(model: ReconNet) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\)"):
        model(torch.zeros(1, 3, 256, 256))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_golden(model: ReconNet, sadtalker_data: Path, full_fp32: None) -> None:
    golden = load_golden(sadtalker_data / "golden_face_3drecon.npz")
    net = ReconNet()
    net.load_state_dict(model.state_dict(), strict=True)
    got = _regress(net.eval().to("cuda"), golden["input_image_u8_nhwc"], "cuda")
    assert_parity(got, golden["out_coeffs_257"], ATOL, "out_coeffs_257")
