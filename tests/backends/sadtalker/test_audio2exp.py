"""Audio2Exp (SimpleWrapperV2): official state-dict layout and parity with golden_audio2exp.npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_sadtalker.audio2exp import Audio2Exp
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity

ATOL = 1e-4  # reference/sadtalker/README.md: audio2exp, all outputs


@pytest.fixture(scope="module")
def schema(sadtalker_data: Path) -> Path:
    return sadtalker_data / "schema_audio2exp.json"


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_audio2exp.npz")


@pytest.fixture(scope="module")
def model(schema: Path) -> Audio2Exp:
    net = Audio2Exp()
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def _inputs(golden: dict[str, np.ndarray], frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    windows = torch.from_numpy(golden["in_indiv_mels"][0, :frames, 0])  # (T, 80, 16)
    ref_exp = torch.from_numpy(golden["in_ref_row70"][:, :64]).expand(frames, 64)
    blink = torch.from_numpy(golden["in_ratio"][0, :frames, 0])
    return windows, ref_exp, blink


def test_state_dict_matches_official_schema(schema: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in Audio2Exp().state_dict().items()}
    official = load_schema(schema)
    assert len(official) == 93
    assert ours == official


def test_strict_load_keeps_every_buffer(model: Audio2Exp, schema: Path) -> None:
    weights = standin_state_dict(schema)
    state = model.state_dict()
    for key in ("mapping1.weight", "audio_encoder.12.conv_block.1.running_var"):
        torch.testing.assert_close(state[key], weights[key], rtol=0, atol=0)
    counters = [v for k, v in state.items() if k.endswith("num_batches_tracked")]
    assert len(counters) == 13
    assert all(v.dtype == torch.int64 and v.dim() == 0 for v in counters)


def test_audio_encoder_matches_golden(model: Audio2Exp, golden: dict[str, np.ndarray]) -> None:
    windows, _, _ = _inputs(golden, 50)
    with torch.inference_mode():
        got = model.encode_audio(windows).numpy()
    assert_parity(got, golden["hook_audio_encoder_T50"], ATOL, "hook_audio_encoder_T50")


@pytest.mark.parametrize(("frames", "name"), [(50, "out_exp_coeff_pred_T50"), (23, "out_exp_coeff_pred_T23")])
def test_expression_matches_golden(
    model: Audio2Exp, golden: dict[str, np.ndarray], frames: int, name: str
) -> None:
    with torch.inference_mode():
        got = model.predict(*_inputs(golden, frames)).numpy()
    assert got.shape == golden[name].shape[1:] == (frames, 64)
    assert_parity(got, golden[name][0], ATOL, name)


def test_chunk_size_does_not_change_the_result(model: Audio2Exp, golden: dict[str, np.ndarray]) -> None:
    inputs = _inputs(golden, 23)
    with torch.inference_mode():
        by_ten = model.predict(*inputs)
        whole = model.predict(*inputs, chunk_frames=64)
    torch.testing.assert_close(whole, by_ten, rtol=0, atol=1e-5)


def test_mismatched_lengths_are_rejected(model: Audio2Exp, golden: dict[str, np.ndarray]) -> None:
    windows, ref_exp, blink = _inputs(golden, 10)
    with pytest.raises(ValueError, match="frame counts differ"):
        model.predict(windows, ref_exp, blink[:9])
