"""Colour SyncNet (lip-sync expert): official state-dict layout and parity with the official forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_wav2lip.layers import fold_batchnorm
from lipsync_wav2lip.models import load_syncnet
from lipsync_wav2lip.syncnet import SyncNetColor
from standin import load_golden, load_schema, standin_state_dict
from tolerances import assert_parity
from torch import nn

ATOL = 1e-5  # reference/wav2lip/README.md: embeddings and cosine within 1e-5


@pytest.fixture(scope="module")
def schema(wav2lip_data: Path) -> Path:
    return wav2lip_data / "schema_syncnet_color.json"


@pytest.fixture(scope="module")
def golden(wav2lip_data: Path) -> dict[str, np.ndarray]:
    return load_golden(wav2lip_data / "golden_syncnet.npz")


@pytest.fixture(scope="module")
def model(schema: Path) -> SyncNetColor:
    net = SyncNetColor()
    load_into(net, standin_state_dict(schema), source="stand-in")
    return net.eval()


def _run(net: nn.Module, golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    audio = torch.from_numpy(golden["audio_sequences"])
    face = torch.from_numpy(golden["face_sequences"])
    with torch.inference_mode():
        audio_embedding, face_embedding = net(audio, face)
        return {
            "audio_embedding": audio_embedding.numpy(),
            "face_embedding": face_embedding.numpy(),
            "cosine_similarity": (audio_embedding * face_embedding).sum(dim=1).numpy(),
            "audio_embedding_unnormalized": net.audio_encoder(audio).flatten(1).numpy(),
            "face_embedding_unnormalized": net.face_encoder(face).flatten(1).numpy(),
        }


def test_state_dict_matches_official_schema(schema: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in SyncNetColor().state_dict().items()}
    official = load_schema(schema)
    assert len(official) == 217
    assert ours.keys() ^ official.keys() == set()
    assert ours == official


@pytest.mark.parametrize("fold_bn", [False, True], ids=["plain", "bn-folded"])
def test_forward_matches_golden(model: SyncNetColor, golden: dict[str, np.ndarray], fold_bn: bool) -> None:
    net = fold_batchnorm(model) if fold_bn else model
    got = _run(net, golden)
    for name, value in got.items():
        assert_parity(value, golden[name], ATOL, name)
    np.testing.assert_allclose(np.linalg.norm(got["face_embedding"], axis=1), 1.0, rtol=0, atol=1e-6)


def test_load_syncnet_reads_an_official_format_checkpoint(
    tmp_path: Path, schema: Path, golden: dict[str, np.ndarray]
) -> None:
    path = tmp_path / "lipsync_expert.pth"
    weights = {"module." + k: v for k, v in standin_state_dict(schema).items()}
    torch.save({"state_dict": weights, "optimizer": None, "global_step": 0, "global_epoch": 0}, path)

    got = _run(load_syncnet(path, "cpu"), golden)

    assert_parity(got["cosine_similarity"], golden["cosine_similarity"], ATOL, "cosine_similarity")
