"""GFPGANv1Clean (SadTalker's --enhancer gfpgan network) against gfpgan's golden; ParseNet's layout.

Golden: tests/data/sadtalker/make_gfpgan_goldens.py (gfpgan 1.3.8, stand-in weights, stored noise maps). There
the float32 forward differs from a float64 one by at most 1.1e-6 (mean 1.5e-7) on outputs with std 1.41; on
that machine our network reproduces gfpgan bit for bit. The tolerance allows ~100x that noise for other
convolution algorithms (threads, CPUs, cuDNN without TF32) and is still far below any real layout error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_kit.errors import BackendError, ErrorCode
from lipsync_sadtalker.gfpgan import FACE_SIZE, GFPGANv1Clean, ParseNet, load_gfpgan, load_parsenet
from standin import load_golden, load_schema, standin_state_dict
from standin_weights import make_state_dict
from tolerances import assert_parity
from torch import Tensor

OUT_ATOL = 1e-4
LATENT_ATOL = 1e-5  # latent std 0.13; float32 noise of the encoder is ~1e-7


@pytest.fixture(scope="module")
def schema_path(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_gfpgan.json"


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_gfpgan.npz")


def golden_input(golden: dict[str, np.ndarray]) -> Tensor:
    """The recipe in the golden's notes: PCG64(4321) integers in [96, 161) as RGB, scaled to [-1, 1]."""
    image = np.random.Generator(np.random.PCG64(4321)).integers(96, 161, (512, 512, 3), dtype=np.uint8)
    assert hashlib.sha256(image.tobytes()).hexdigest() == str(golden["input_sha256"])
    return torch.from_numpy((image.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def small() -> GFPGANv1Clean:
    """A cheaper GFPGAN for behaviour tests: the same layout at a 16 px face size, stand-in weights."""
    model = GFPGANv1Clean(16)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in make_state_dict(shapes).items()})
    return model.eval()


def test_state_dict_matches_gfpgan_schema(schema_path: Path) -> None:
    schema = load_schema(schema_path)
    state = GFPGANv1Clean().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(schema.items())  # same order, too
    assert len(state) == 285


def test_parsenet_state_dict_matches_facexlib_schema(schema_path: Path) -> None:
    entries = json.loads(schema_path.read_text())["parsenet_state_dict"]
    state = ParseNet().state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(k, shape) for k, shape, _ in entries]
    assert len(state) == 238


def test_load_parsenet_reads_a_bare_state_dict(tmp_path: Path) -> None:
    state = ParseNet().state_dict()
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(state, path)
    model = load_parsenet(path)
    assert not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_forward_matches_golden(schema_path: Path, golden: dict[str, np.ndarray]) -> None:
    model = GFPGANv1Clean()
    load_into(model, standin_state_dict(schema_path), source="stand-in")  # strict
    latents: list[Tensor] = []
    model.final_linear.register_forward_hook(lambda _m, _i, out: latents.append(out))
    with torch.inference_mode():
        out = model.eval()(golden_input(golden), randomize_noise=False)[0].numpy()
    assert out.shape == (3, FACE_SIZE, FACE_SIZE)
    assert_parity(latents[0].view(16, 512).numpy(), golden["latent"], LATENT_ATOL, "latent")
    assert_parity(out[:, ::4, ::4], golden["out_sub"], OUT_ATOL, "out_sub")
    assert_parity(out[:, 224:288, 224:288], golden["out_crop"], OUT_ATOL, "out_crop")
    # Means and deviations of 262,144 values, summed in float64 here: a float32 sum's order depends on the CPU
    # (numpy's SIMD width); the golden's own float32 mean is within a few steps of the exact one.
    assert_parity(out.mean(axis=(1, 2), dtype=np.float64), golden["out_channel_mean"], 1e-5, "mean")
    assert_parity(out.std(axis=(1, 2), dtype=np.float64), golden["out_channel_std"], 1e-5, "std")


def test_batch_equals_single_faces(small: GFPGANv1Clean) -> None:
    model = small
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.inference_mode():
        batch = model(x, randomize_noise=False)
        single = torch.cat([model(x[i : i + 1], randomize_noise=False) for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-5)


def test_random_noise_follows_the_generator(small: GFPGANv1Clean) -> None:
    model = small
    x = torch.zeros(2, 3, 16, 16)
    with torch.inference_mode():
        first = model(x, generator=torch.Generator().manual_seed(7))
        again = model(x, generator=torch.Generator().manual_seed(7))
        other = model(x, generator=torch.Generator().manual_seed(8))
        stored = model(x, randomize_noise=False)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # fresh noise per face, as upstream
    torch.testing.assert_close(stored[0], stored[1], rtol=0, atol=0)


@pytest.mark.parametrize("entry", ["params_ema", "params"])
def test_load_gfpgan_reads_the_official_container(small: GFPGANv1Clean, tmp_path: Path, entry: str) -> None:
    """GFPGANv1.4.pth is ``{"params_ema": state}``; GFPGANer takes ``params`` when there is no params_ema."""
    state = small.state_dict()
    path = tmp_path / "GFPGAN_small.pth"
    torch.save({entry: state}, path)
    model = load_gfpgan(path, out_size=16)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_gfpgan_rejects_another_network(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"params_ema": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(BackendError) as err:
        load_gfpgan(path, out_size=16)
    assert err.value.code == ErrorCode.BAD_CHECKPOINT
