"""Write MuseTalk 1.5 stand-in weights in the official file layouts (run with a backend env's Python).

    python make_musetalk_standins.py OUT_DIR SCHEMA_DIR

Writes, with the deterministic stand-in values of ``standin_weights.py`` under the official key names:

- ``unet_standin.pth``: a raw fp32 state dict like ``musetalkV15/unet.pth``, and ``musetalk.json``;
- ``vae_standin.safetensors``: sd-vae-ft-mse with the legacy mid-block attention names
  (query/key/value/proj_attn) and ``{"format": "pt"}`` metadata, as the published file, and
  ``vae_config.json``;
- ``whisper_standin.safetensors``: whisper-tiny keys under ``model.`` without ``proj_out``, and
  ``whisper_config.json`` / ``whisper_preprocessor_config.json``;
- ``face`` part: ``dwpose_standin.pth`` (mmengine container ``{"state_dict": ...}`` like
  ``dw-ll_ucoco_384.pth``) and ``bisenet_standin.pth`` (a raw state dict like ``79999_iter.pth``); S3FD is
  ``tests/backends/make_standin_checkpoints.py``'s.

``SCHEMA_DIR`` is tests/data/musetalk.

The configs are the file values recorded in the reference data's ``configs.json``.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from standin import standin_state_dict

UNET_FILES = ("unet_standin.pth", "musetalk.json")
VAE_FILES = ("vae_standin.safetensors", "vae_config.json")
WHISPER_FILES = ("whisper_standin.safetensors", "whisper_config.json", "whisper_preprocessor_config.json")


def _write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2) + "\n")


def write_unet(out_dir: Path, schema_dir: Path, configs: dict) -> None:
    state = standin_state_dict(schema_dir / "schema_unet.json")
    order = [entry[0] for entry in json.loads((schema_dir / "schema_unet.json").read_text())["state_dict"]]
    torch.save(OrderedDict((key, state.pop(key)) for key in order), out_dir / UNET_FILES[0])
    _write_json(out_dir / UNET_FILES[1], configs["unet"]["config_file_values"])


def write_vae(out_dir: Path, schema_dir: Path, configs: dict) -> None:
    schema = json.loads((schema_dir / "schema_vae.json").read_text())
    state = standin_state_dict(schema_dir / "schema_vae.json")  # seeded by the current key names
    file_key = {row[0]: row[3] if len(row) > 3 else row[0] for row in schema["state_dict"]}
    tensors = {file_key[key]: value.contiguous() for key, value in state.items()}
    save_file(tensors, str(out_dir / VAE_FILES[0]), metadata={"format": "pt"})
    _write_json(out_dir / VAE_FILES[1], configs["vae"]["config_file_values"])


def write_whisper(out_dir: Path, schema_dir: Path, configs: dict) -> None:
    state = standin_state_dict(schema_dir / "schema_whisper.json")
    tensors = {f"model.{key}": value.contiguous() for key, value in state.items()}
    save_file(tensors, str(out_dir / WHISPER_FILES[0]), metadata={"format": "pt"})
    whisper = configs["whisper"]
    _write_json(
        out_dir / WHISPER_FILES[1],
        {
            "model_type": "whisper",
            "architectures": ["WhisperForConditionalGeneration"],
            **whisper["config_values_used"],
        },
    )
    _write_json(out_dir / WHISPER_FILES[2], configs["whisper_feature_extractor"]["values"])


def write_face(out_dir: Path, schema_dir: Path, _configs: dict) -> None:
    torch.save(
        {"state_dict": standin_state_dict(schema_dir / "schema_dwpose.json")}, out_dir / "dwpose_standin.pth"
    )
    torch.save(standin_state_dict(schema_dir / "schema_bisenet.json"), out_dir / "bisenet_standin.pth")


def main(out_dir: Path, schema_dir: Path, parts: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = json.loads((schema_dir / "configs.json").read_text())
    writers = {"whisper": write_whisper, "vae": write_vae, "face": write_face, "unet": write_unet}
    for part in parts or list(writers):
        writers[part](out_dir, schema_dir, configs)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
