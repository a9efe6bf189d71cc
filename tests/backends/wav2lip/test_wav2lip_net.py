"""Wav2Lip generator: official state-dict layout, parity with the official forward, BN folding, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_wav2lip.layers import fold_batchnorm
from lipsync_wav2lip.models import load_generator
from lipsync_wav2lip.wav2lip import Wav2Lip
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity
from torch import nn

ATOL = 1e-5  # reference/wav2lip/README.md: observed float32 vs float64 noise 5e-7


@pytest.fixture(scope="module")
def schema(wav2lip_data: Path) -> Path:
    return wav2lip_data / "schema_wav2lip.json"


@pytest.fixture(scope="module")
def golden(wav2lip_data: Path) -> dict[str, np.ndarray]:
    return load_golden(wav2lip_data / "golden_wav2lip.npz")


@pytest.fixture(scope="module")
def model(schema: Path) -> Wav2Lip:
    net = Wav2Lip()
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def _run(net: nn.Module, golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    audio = torch.from_numpy(golden["audio_sequences"])
    face = torch.from_numpy(golden["face_sequences"])
    with torch.inference_mode():
        return {
            "output": net(audio, face).numpy(),
            "audio_embedding": net.audio_encoder(audio).numpy(),
            "face_embedding": net.encode_face(face)[-1].numpy(),
        }


def test_state_dict_matches_official_schema(schema: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in Wav2Lip().state_dict().items()}
    official = load_schema(schema)
    assert len(official) == 352
    assert ours.keys() - official.keys() == set()
    assert official.keys() - ours.keys() == set()
    assert ours == official


def test_strict_load_copies_the_standin_weights(model: Wav2Lip, schema: Path) -> None:
    weights = standin_state_dict(schema)
    state = model.state_dict()
    for key in (
        "face_encoder_blocks.0.0.conv_block.0.weight",
        "face_decoder_blocks.6.0.conv_block.0.weight",
        "output_block.1.bias",
        "audio_encoder.12.conv_block.1.running_var",
    ):
        torch.testing.assert_close(state[key], weights[key], rtol=0, atol=0)


@pytest.mark.parametrize("fold_bn", [False, True], ids=["plain", "bn-folded"])
def test_forward_matches_golden(model: Wav2Lip, golden: dict[str, np.ndarray], fold_bn: bool) -> None:
    net = fold_batchnorm(model) if fold_bn else model
    got = _run(net, golden)
    for name, value in got.items():
        assert_parity(value, golden[name], ATOL, name)


def test_folding_removes_every_batchnorm_and_leaves_the_source_alone(model: Wav2Lip) -> None:
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 50  # one per conv block
    assert not folded.training
    assert len(model.state_dict()) == 352


def test_sequence_layout_matches_frame_layout(model: Wav2Lip, golden: dict[str, np.ndarray]) -> None:
    # The training layout: audio (B, T, 1, 80, 16), face (B, 6, T, 96, 96); here B = T = 2.
    audio = torch.from_numpy(golden["audio_sequences"])
    face = torch.from_numpy(golden["face_sequences"])
    with torch.inference_mode():
        out = model(audio.view(2, 2, 1, 80, 16), face.view(2, 2, 6, 96, 96).transpose(1, 2))
    assert out.shape == (2, 3, 2, 96, 96)
    expected = torch.from_numpy(golden["output"]).view(2, 2, 3, 96, 96).transpose(1, 2)
    assert_parity(out.numpy(), expected.numpy(), ATOL, "output")


def test_rejects_wrong_input_size(model: Wav2Lip) -> None:
    with pytest.raises(ValueError, match=r"face \(B, 6, 96, 96\)"):
        model(torch.zeros(1, 1, 80, 16), torch.zeros(1, 6, 128, 128))


@pytest.mark.parametrize("fold_bn", [False, True], ids=["plain", "bn-folded"])
def test_load_generator_reads_an_official_format_checkpoint(
    tmp_path: Path, schema: Path, golden: dict[str, np.ndarray], fold_bn: bool
) -> None:
    # The layout of the released wav2lip.pth: the training container, keys under nn.DataParallel.
    path = tmp_path / "wav2lip.pth"
    weights = {"module." + k: v for k, v in standin_state_dict(schema).items()}
    torch.save({"state_dict": weights, "optimizer": None, "global_step": 0, "global_epoch": 0}, path)

    net = load_generator(path, "cpu", fold_bn=fold_bn)

    assert not net.training
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()) is not fold_bn
    got = _run(net, golden)
    assert_parity(got["output"], golden["output"], ATOL, "output")
