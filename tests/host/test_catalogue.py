"""The catalogue: models, the weight files their options pick, and the commands that list them."""

from __future__ import annotations

import json

import pytest

from lipsync_cli.catalogue import MODELS, get_model, model_weight_files
from lipsync_cli.errors import LipsyncError
from lipsync_cli.model_options import resolve_options
from lipsync_cli.output import PlainReporter
from lipsync_cli.render import RenderRequest, resolve_output, resolve_weights


def _names(model: str, **options: object) -> list[str]:
    return [wf.name for wf in model_weight_files(get_model(model), every_checkpoint=False, options=options)]


def test_options_pick_the_files() -> None:
    assert _names("wav2lip") == ["wav2lip.pth", "s3fd-619a316812.pth"]
    assert _names("wav2lip", checkpoint="wav2lip_gan")[0] == "wav2lip_gan.pth"
    assert _names("wav2lip", box=[0, 96, 0, 96]) == ["wav2lip.pth"]  # a fixed box skips detection
    assert _names("sadtalker") == [
        "SadTalker_V0.0.2_256.safetensors",
        "mapping_00229-model.pth.tar",
        "detection_Resnet50_Final.pth",
        "alignment_WFLW_4HG.pth",
    ]
    assert _names("sadtalker", size=512, preprocess="extfull")[:2] == [
        "SadTalker_V0.0.2_512.safetensors",
        "mapping_00109-model.pth.tar",
    ]
    assert _names("sadtalker-still")[1] == "mapping_00109-model.pth.tar"  # full mode by default
    assert len(model_weight_files(get_model("sadtalker"))) == 8  # every choice, for `weights fetch --all`
    assert _names("sadtalker", enhancer="gfpgan")[-2:] == ["GFPGANv1.4.pth", "parsing_parsenet.pth"]
    assert _names("musetalk") == [
        "musetalkV15_unet.pth",
        "musetalkV15_musetalk.json",
        "sd-vae-ft-mse.safetensors",
        "sd-vae-ft-mse_config.json",
        "whisper-tiny.safetensors",
        "whisper-tiny_config.json",
        "whisper-tiny_preprocessor_config.json",
        "dw-ll_ucoco_384.pth",
        "79999_iter.pth",
        "s3fd-619a316812.pth",  # the same S3FD file as Wav2Lip's
    ]


def test_every_musetalk_file_has_two_sources_and_a_licence() -> None:
    for wf in model_weight_files(get_model("musetalk")):
        assert len(wf.urls) >= 2 and all(url.startswith("https://") for url in wf.urls), wf.name
        assert len(wf.sha256) == 64 and wf.size > 0, wf.name
        assert "hf-mirror.com" not in " ".join(wf.urls)  # never a third-party endpoint override
        assert wf.license or wf.name.startswith("s3fd"), wf.name


def test_still_model_fixes_still_and_defaults_to_full(tmp_path) -> None:
    still = get_model("sadtalker-still")
    options = resolve_options(still, {}, base_dir=tmp_path)
    assert options["preprocess"] == "full" and "still" not in options
    with pytest.raises(LipsyncError) as info:
        resolve_options(still, {"still": False}, base_dir=tmp_path)
    assert info.value.code == "bad_option"
    with pytest.raises(LipsyncError, match="pose-style"):
        resolve_options(get_model("sadtalker"), {"pose_style": 46}, base_dir=tmp_path)
    yaw = resolve_options(get_model("sadtalker"), {"input_yaw": "0, 20 -10"}, base_dir=tmp_path)["input_yaw"]
    assert yaw == [0.0, 20.0, -10.0]


def test_missing_weights_offline_name_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = get_model("sadtalker")
    options = resolve_options(model, {"size": 512}, base_dir=tmp_path)
    request = RenderRequest.from_options(
        options=options,
        model="sadtalker",
        face=tmp_path / "f.jpg",
        audio=tmp_path / "a.wav",
        output=resolve_output(str(tmp_path / "o.mp4"), None, False),
    )
    with pytest.raises(LipsyncError) as info:
        resolve_weights(model, request, PlainReporter())
    assert info.value.code == "weights_missing"
    assert "SadTalker_V0.0.2_512.safetensors" in info.value.message


def test_models_command_lists_every_model(run_cli) -> None:
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    listed = json.loads(proc.stdout)["models"]
    assert [row["model"] for row in listed] == list(MODELS)
    assert {row["model"]: row["backend"] for row in listed}["sadtalker-still"] == "sadtalker"


def test_unused_roles_are_left_out_even_when_given(tmp_path) -> None:
    """``--box`` with ``--detector-checkpoint``: the detector is unused, so neither checked nor sent."""
    model = get_model("wav2lip")
    generator = tmp_path / "mine.pth"
    generator.write_bytes(b"not checked here")
    options = resolve_options(model, {"box": [0, 96, 0, 96]}, base_dir=tmp_path)
    request = RenderRequest.from_options(
        options={**options, "checkpoint": generator, "detector_checkpoint": tmp_path / "absent.pth"},
        model="wav2lip",
        face=tmp_path / "f.jpg",
        audio=tmp_path / "a.wav",
        output=resolve_output(str(tmp_path / "o.mp4"), None, False),
    )
    weights = resolve_weights(model, request, PlainReporter())
    assert weights == {"checkpoint": {"path": str(generator), "sha256": "custom"}}
