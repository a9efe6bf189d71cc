"""The v1.5 chain crop -> masked/reference latents -> UNet step -> decode, against the official golden.

Stand-in UNet (850M parameters, written once per run), VAE (legacy attention names in the file) and the
golden's stored VAE noise, so the official ``latent_dist.sample()`` is reproduced exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.errors import BackendError
from lipsync_musetalk.latents import crop_face, decode_faces, encode_latents, generate_latents, vae_input
from lipsync_musetalk.models import load_unet, load_vae
from lipsync_musetalk.positional_encoding import add_positions
from standin import load_golden
from tolerances import assert_parity

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def golden(musetalk_data: Path) -> dict[str, np.ndarray]:
    return load_golden(musetalk_data / "golden_latents_unet_vae.npz")


@pytest.fixture(scope="module")
def vae(vae_standin: Path) -> torch.nn.Module:
    return load_vae(vae_standin / "vae_standin.safetensors", vae_standin / "vae_config.json", CPU)


@pytest.fixture(scope="module")
def unet(unet_standin: Path) -> torch.nn.Module:
    return load_unet(unet_standin / "unet_standin.pth", unet_standin / "musetalk.json", CPU)


def test_v15_crop_is_the_official_one(golden: dict[str, np.ndarray]) -> None:
    margin = int(golden["extra_margin"])
    for frame, box, crop in zip(
        golden["frames_bgr"], golden["boxes_x1y1x2y2"], golden["crops_bgr_256"], strict=True
    ):
        np.testing.assert_array_equal(crop_face(frame, tuple(int(v) for v in box), margin), crop)


def test_masked_input_blacks_out_the_lower_half(golden: dict[str, np.ndarray]) -> None:
    masked, reference = vae_input(golden["crops_bgr_256"])
    assert masked.shape == reference.shape == (2, 3, 256, 256)
    assert torch.all(masked[:, :, 128:] == -1)
    torch.testing.assert_close(masked[:, :, :128], reference[:, :, :128], rtol=0, atol=0)
    assert reference.min() >= -1 and reference.max() <= 1


def test_latents_match_official_with_the_stored_noise(
    vae: torch.nn.Module, golden: dict[str, np.ndarray]
) -> None:
    noise = torch.from_numpy(golden["eps"]).reshape(2, 2, 4, 32, 32)  # per crop: masked, then reference
    with torch.inference_mode():
        latents = encode_latents(vae, golden["crops_bgr_256"], noise)
        mean_only = encode_latents(vae, golden["crops_bgr_256"][:1])
    assert_parity(latents.numpy(), golden["latents"], atol=1e-4, name="latents")
    # Without noise the latents are the posterior mean (what MuseTalk's training uses).
    mean = golden["latent_mean"][:2].reshape(1, 8, 32, 32)
    assert_parity(mean_only.numpy(), 0.18215 * mean, atol=1e-4, name="latent mean")


def test_unet_and_decode_match_official(
    unet: torch.nn.Module, vae: torch.nn.Module, golden: dict[str, np.ndarray]
) -> None:
    audio = torch.from_numpy(golden["whisper_batch"])
    assert_parity(add_positions(audio).numpy(), golden["audio_feature_batch"], atol=1e-5, name="PE")
    with torch.inference_mode():
        out = generate_latents(unet, torch.from_numpy(golden["latents"]), audio)
        assert_parity(out.numpy(), golden["unet_out"], atol=1e-4, name="unet_out")
        faces = decode_faces(vae, torch.from_numpy(golden["unet_out"]))
    difference = np.abs(faces.astype(np.int16) - golden["recon_bgr_u8"].astype(np.int16))
    assert faces.shape == (2, 256, 256, 3) and faces.dtype == np.uint8
    assert difference.max() <= 1, f"max difference {difference.max()} levels"


def test_audio_changes_the_generated_latents(unet: torch.nn.Module, golden: dict[str, np.ndarray]) -> None:
    audio = torch.from_numpy(golden["whisper_batch"])
    with torch.inference_mode():
        swapped = generate_latents(unet, torch.from_numpy(golden["latents"]), audio.flip(0))
    assert np.abs(swapped.numpy() - golden["unet_out"]).max() > 0.1


def test_vae_file_with_current_attention_names_loads_too(vae_standin: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    legacy = load_file(vae_standin / "vae_standin.safetensors")
    assert "encoder.mid_block.attentions.0.query.weight" in legacy
    renamed = {
        key.replace(".query.", ".to_q.")
        .replace(".key.", ".to_k.")
        .replace(".value.", ".to_v.")
        .replace(".proj_attn.", ".to_out.0."): value
        for key, value in legacy.items()
    }
    save_file(renamed, str(tmp_path / "vae.safetensors"))
    vae = load_vae(tmp_path / "vae.safetensors", vae_standin / "vae_config.json", CPU)
    assert torch.equal(
        vae.encoder.mid_block.attentions[0].to_q.weight, legacy["encoder.mid_block.attentions.0.query.weight"]
    )


def test_a_file_of_another_network_is_a_bad_checkpoint(vae_standin: Path, whisper_standin: Path) -> None:
    with pytest.raises(BackendError) as caught:
        load_vae(whisper_standin / "whisper_standin.safetensors", vae_standin / "vae_config.json", CPU)
    assert caught.value.code == "bad_checkpoint"
    assert "missing keys" in str(caught.value)
