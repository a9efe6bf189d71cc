"""SadTalker face renderer: official state-dict layout, parity with the official forward, the per-clip /
per-frame split, the spectral-norm eval weights, the SPADE upsampling shortcut and the 512 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lipsync_sadtalker.dense_motion import expand_batch
from lipsync_sadtalker.generator import OcclusionAwareSPADEGenerator, RenderOutput
from lipsync_sadtalker.spade import SPADE, SpectralNormConv2d, upsampled_conv3x3
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity
from torch import Tensor, nn

# reference/sadtalker/README.md, "Suggested tolerances" (generator row).
ATOL_MOTION = 1e-5  # mask, occlusion_map, deformation
ATOL_LOGITS = 5e-2  # decoder output before the sigmoid (values up to ~240 with the stand-in weights)
ATOL_PREDICTION = 1e-2
MEAN_PREDICTION = 1e-4  # mean absolute difference of the prediction

GOLDEN_OUTPUTS = {  # RenderOutput field -> golden_generator.npz entry
    "mask": "out_mask",
    "occlusion_map": "out_occlusion_map",
    "deformation": "hook_deformation",
    "logits": "hook_decoder_logits",
    "prediction": "out_prediction",
}


@pytest.fixture(scope="module")
def schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_generator.json"


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_generator.npz")


@pytest.fixture(scope="module")
def model(schema: Path) -> OcclusionAwareSPADEGenerator:
    net = OcclusionAwareSPADEGenerator()
    net.load_state_dict(standin_state_dict(schema), strict=True)
    return net.prepare_for_inference()


def _image(u8_nhwc: np.ndarray) -> Tensor:
    """The goldens' input convention: uint8 NHWC -> float32 / 255, NCHW."""
    return torch.from_numpy(u8_nhwc.astype(np.float32) / np.float32(255)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def golden_output(model: OcclusionAwareSPADEGenerator, golden: dict[str, np.ndarray]) -> RenderOutput:
    with torch.inference_mode():
        return model(
            _image(golden["input_image_u8_nhwc"]),
            kp_source=torch.from_numpy(golden["in_kp_source"]),
            kp_driving=torch.from_numpy(golden["in_kp_driving"]),
        )


def _assert_matches(got: RenderOutput, want: dict[str, np.ndarray], label: str = "") -> None:
    """Compare logits first: with the stand-in weights the prediction is mostly saturated."""
    for field in ("logits", "mask", "occlusion_map", "deformation"):
        atol = ATOL_LOGITS if field == "logits" else ATOL_MOTION
        assert_parity(getattr(got, field).float().cpu().numpy(), want[field], atol, f"{label}{field}")
    prediction = got.prediction.float().cpu().numpy()
    assert_parity(prediction, want["prediction"], ATOL_PREDICTION, f"{label}prediction")
    assert np.abs(prediction - want["prediction"]).mean() < MEAN_PREDICTION, f"{label}prediction mean"


def test_state_dict_matches_official_schema(schema: Path) -> None:
    state = OcclusionAwareSPADEGenerator().state_dict()
    official = load_schema(schema)
    assert len(official) == 386
    assert list(state) == list(official)  # same keys, in the official order
    assert {k: tuple(v.shape) for k, v in state.items()} == official
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and all(state[k].dtype == torch.int64 and state[k].dim() == 0 for k in counters)


def test_strict_load_and_inference_prep_leave_the_weights_alone(
    model: OcclusionAwareSPADEGenerator, schema: Path, golden_output: RenderOutput
) -> None:
    weights = standin_state_dict(schema)
    state = model.state_dict()  # after prepare_for_inference and a forward
    assert state.keys() == weights.keys()
    for key, value in weights.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key


def test_forward_matches_golden(golden_output: RenderOutput, golden: dict[str, np.ndarray]) -> None:
    _assert_matches(golden_output, {field: golden[key] for field, key in GOLDEN_OUTPUTS.items()})
    official = golden_output.as_official_dict()
    assert official.keys() == {"mask", "occlusion_map", "prediction"}
    torch.testing.assert_close(official["prediction"], torch.sigmoid(golden_output.logits))


def test_batched_render_broadcasts_one_source_encoding(model: OcclusionAwareSPADEGenerator) -> None:
    # 128 px (the smallest size the layout allows) keeps this cheap; the function is the same.
    rng = np.random.Generator(np.random.PCG64(7))
    image = _image(rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8))
    kp_source = torch.from_numpy(rng.uniform(-0.7, 0.7, (1, 15, 3)).astype(np.float32))
    kp_driving = kp_source + torch.from_numpy(0.05 * rng.standard_normal((2, 15, 3)).astype(np.float32))
    with torch.inference_mode():
        encoding = model.encode_source(image)
        batched = model.render(encoding, kp_source, kp_driving)  # source batch 1, driving batch 2
        singles = [model(image, kp_source=kp_source, kp_driving=kp_driving[i : i + 1]) for i in range(2)]
    assert encoding.volume.shape == (1, 32, 16, 32, 32)
    assert encoding.compressed.shape == (1, 4, 16, 32, 32)
    assert batched.prediction.shape == (2, 3, 128, 128)
    for i, single in enumerate(singles):
        want = {field: getattr(single, field).numpy() for field in GOLDEN_OUTPUTS}
        row = RenderOutput(**{field: getattr(batched, field)[i : i + 1] for field in GOLDEN_OUTPUTS})
        _assert_matches(row, want, label=f"frame {i}: ")


def test_expand_batch_is_a_view() -> None:
    x = torch.randn(1, 4, 2, 3, 3)
    expanded = expand_batch(x, 5)
    assert expanded.shape == (5, 4, 2, 3, 3)
    assert expanded.data_ptr() == x.data_ptr() and expanded.stride(0) == 0
    assert expand_batch(expanded, 5) is expanded
    with pytest.raises(ValueError, match="cannot broadcast a batch of 2 to 3"):
        expand_batch(torch.zeros(2, 1), 3)


def test_spectral_norm_conv_is_torch_spectral_norm_in_eval_mode() -> None:
    torch.manual_seed(0)
    ours = SpectralNormConv2d(8, 6, 3, padding=1)
    reference = nn.utils.spectral_norm(nn.Conv2d(8, 6, 3, padding=1))
    # Arbitrary (not converged) u, v as in the stand-in weights: no power iteration may happen in eval.
    state = {
        "bias": torch.randn(6),
        "weight_orig": torch.randn(6, 8, 3, 3),
        "weight_u": 0.05 * torch.randn(6),
        "weight_v": 0.05 * torch.randn(72),
    }
    ours.load_state_dict(state, strict=True)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
        sigma = torch.dot(state["weight_u"], state["weight_orig"].flatten(1) @ state["weight_v"])
        torch.testing.assert_close(ours.weight, state["weight_orig"] / sigma, rtol=0, atol=0)
    assert reference.weight_u.equal(state["weight_u"])  # eval mode left u untouched


def test_spectral_norm_weight_is_cached_until_the_stored_tensors_change() -> None:
    conv = SpectralNormConv2d(4, 3, 1, bias=False)
    assert list(conv.state_dict()) == ["weight_orig", "weight_u", "weight_v"]
    first = conv.weight
    assert conv.weight is first  # computed once
    doubled_u = {k: 2 * v if k == "weight_u" else v for k, v in conv.state_dict().items()}
    conv.load_state_dict(doubled_u, strict=True)  # sigma doubles
    torch.testing.assert_close(conv.weight, first / 2)
    assert conv.double().weight.dtype == torch.float64


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampled_conv_equals_conv_of_nearest_upsampling(scale: int) -> None:
    gen = torch.Generator().manual_seed(scale)
    x = torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 5, 3, 3, generator=gen, dtype=torch.float64)
    bias = torch.randn(4, generator=gen, dtype=torch.float64)
    direct = F.conv2d(F.interpolate(x, scale_factor=scale, mode="nearest"), weight, bias, padding=1)
    torch.testing.assert_close(upsampled_conv3x3(x, weight, bias, scale), direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [(6, 6), (12, 12), (24, 24), (9, 15)], ids=["same", "x2", "x4", "x1.5-x2.5"])
def test_spade_conditioning_equals_official_resize_then_conv(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    spade = SPADE(norm_channels=4, label_channels=3).double()
    segmap = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    official = spade.mlp_shared(F.interpolate(segmap, size=size, mode="nearest"))
    with torch.no_grad():
        torch.testing.assert_close(spade.conditioning(segmap, size), official, rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def meta_model() -> OcclusionAwareSPADEGenerator:
    """The generator on the meta device: shapes only, no arithmetic."""
    with torch.device("meta"):
        return OcclusionAwareSPADEGenerator().eval()


def test_512_layout_shapes(meta_model: OcclusionAwareSPADEGenerator) -> None:
    # The 512 checkpoint has the same weights and config as 256; only the image size changes.
    net = meta_model
    with torch.device("meta"):
        image = torch.empty(2, 3, 512, 512)
        kp = torch.empty(1, 15, 3)
        kp_driving = torch.empty(2, 15, 3)
    with torch.inference_mode():
        encoding = net.encode_source(image[:1])
        out = net.render(encoding, kp, kp_driving)
    assert encoding.volume.shape == (1, 32, 16, 128, 128)
    assert out.prediction.shape == out.logits.shape == (2, 3, 512, 512)
    assert out.mask.shape == (2, 16, 16, 128, 128)
    assert out.occlusion_map.shape == (2, 1, 128, 128)
    assert out.deformation.shape == (2, 16, 128, 128, 3)


@pytest.mark.parametrize("shape", [(1, 3, 200, 200), (1, 4, 256, 256), (3, 256, 256)])
def test_rejects_unsupported_images(meta_model: OcclusionAwareSPADEGenerator, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"H and W multiples of 128"):
        meta_model.encode_source(torch.empty(shape, device="meta"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.usefixtures("full_fp32")
def test_cuda_matches_golden_and_runs_in_half(
    model: OcclusionAwareSPADEGenerator, golden: dict[str, np.ndarray]
) -> None:
    inputs = (
        _image(golden["input_image_u8_nhwc"]),
        torch.from_numpy(golden["in_kp_source"]),
        torch.from_numpy(golden["in_kp_driving"]),
    )
    net = OcclusionAwareSPADEGenerator().cuda()
    net.load_state_dict(model.state_dict(), strict=True)
    net.prepare_for_inference()
    image, kp_source, kp_driving = (t.cuda() for t in inputs)
    with torch.inference_mode():
        out = net(image, kp_source=kp_source, kp_driving=kp_driving)
    _assert_matches(out, {field: golden[key] for field, key in GOLDEN_OUTPUTS.items()}, label="cuda: ")

    half = net.half()
    with torch.inference_mode():
        out = half(image.half(), kp_source=kp_source.half(), kp_driving=kp_driving.half())
    assert out.prediction.dtype == torch.float16
    for field in GOLDEN_OUTPUTS:
        assert torch.isfinite(getattr(out, field)).all(), field
