"""SyncNet and the sync pipeline's S3FD against the official goldens, with stand-in weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.s3fd import S3FD
from lipsync_syncnet.detection import FaceDetector, SfdFace, remap_sfd_face
from lipsync_syncnet.syncnet import SyncNet
from standin import load_schema, standin_state_dict
from syncnet_clips import clip_frames

# Lip embeddings reach ~52 (float32 spacing 4e-6) after five 3-D convolutions on 0-255 inputs;
# different convolution algorithms differ by a few 1e-5 there.
LIP_ATOL = 2e-3
AUDIO_ATOL = 2e-4  # audio embeddings reach ~5.5
BOX_ATOL = 1e-2  # px, boxes up to ~450 px
SCORE_ATOL = 1e-5


@pytest.fixture(scope="module")
def syncnet(syncnet_data: Path) -> SyncNet:
    model = SyncNet()
    model.load_state_dict(standin_state_dict(syncnet_data / "schema_syncnet.json"), strict=True)
    return model.eval()


def test_state_dict_matches_official_schema(syncnet_data: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in SyncNet().state_dict().items()}
    assert list(ours.items()) == list(load_schema(syncnet_data / "schema_syncnet.json").items())


def test_embeddings_match_official(syncnet: SyncNet, golden: dict[str, np.ndarray]) -> None:
    crops = torch.from_numpy(golden["crops_head"]).permute(3, 0, 1, 2).float()  # (3, 6, 224, 224) BGR
    windows = torch.stack([crops[:, 0:5], crops[:, 1:6]])
    mfcc = torch.from_numpy(golden["mfcc"]).float()
    audio = torch.stack([mfcc[None, :, 0:20], mfcc[None, :, 4:24]])
    with torch.inference_mode():
        lip, aud = syncnet.forward_lip(windows), syncnet.forward_aud(audio)
    np.testing.assert_allclose(lip.numpy(), golden["lip_embedding"][:2], rtol=0, atol=LIP_ATOL)
    np.testing.assert_allclose(aud.numpy(), golden["audio_embedding"][:2], rtol=0, atol=AUDIO_ATOL)


def test_every_audio_window_matches(syncnet: SyncNet, golden: dict[str, np.ndarray]) -> None:
    mfcc = torch.from_numpy(golden["mfcc"]).float()
    windows = torch.stack([mfcc[None, :, 4 * v : 4 * v + 20] for v in range(35)])
    with torch.inference_mode():
        aud = syncnet.forward_aud(windows)
    np.testing.assert_allclose(aud.numpy(), golden["audio_embedding"], rtol=0, atol=AUDIO_ATOL)


@pytest.fixture(scope="module")
def detector(syncnet_data: Path) -> FaceDetector:
    net = SfdFace()
    net.load_state_dict(
        remap_sfd_face(standin_state_dict(syncnet_data / "schema_sfd_face.json")), strict=True
    )
    return FaceDetector(net.eval(), torch.device("cpu"))


def test_sfd_face_keys_map_onto_s3fd(syncnet_data: Path) -> None:
    official = load_schema(syncnet_data / "schema_sfd_face.json")
    remapped = remap_sfd_face({k: torch.zeros(s) for k, s in official.items()})
    assert {k: tuple(v.shape) for k, v in remapped.items()} == {
        k: tuple(v.shape) for k, v in S3FD().state_dict().items()
    }


@pytest.mark.parametrize(
    ("name", "conf_th", "scale"), [("det_q", 0.9, 0.25), ("det_full", 0.9, 1.0), ("det_low", 0.5, 1.0)]
)
def test_detections_match_official(
    detector: FaceDetector,
    portrait: np.ndarray,
    golden: dict[str, np.ndarray],
    name: str,
    conf_th: float,
    scale: float,
) -> None:
    detector.conf_th, detector.scale = conf_th, scale
    for k, found in enumerate(detector.detect(clip_frames(portrait, 2))):
        expected = golden[f"{name}_{k}"]
        assert found.shape == expected.shape
        order = np.lexsort((expected[:, 1], expected[:, 0], -expected[:, 4]))
        mine = np.lexsort((found[:, 1], found[:, 0], -found[:, 4]))
        np.testing.assert_allclose(found[mine, :4], expected[order, :4], rtol=0, atol=BOX_ATOL)
        np.testing.assert_allclose(found[mine, 4], expected[order, 4], rtol=0, atol=SCORE_ATOL)
