"""Write SadTalker stand-in weights in the official file formats (run with a backend env's Python).

    python make_sadtalker_standins.py OUT_DIR SCHEMA_DIR

``SadTalker_standin.safetensors``: the five networks under their bundle prefixes, as in
``SadTalker_V0.0.2_256.safetensors`` (same keys, shapes and dtypes; the README of the reference data
shows the file is then byte-for-byte the official size). ``mapping_crop_standin.pth.tar`` and
``mapping_full_standin.pth.tar``: training containers with the net under ``mapping``, like
``mapping_00229-model.pth.tar`` / ``mapping_00109-model.pth.tar``. ``GFPGAN_standin.pth`` and
``parsenet_standin.pth``: the ``--enhancer gfpgan`` files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from standin import standin_state_dict
from standin_weights import make_state_dict

BUNDLE_SCHEMAS = {
    "kp_extractor": "schema_kp_detector.json",
    "generator": "schema_generator.json",
    "audio2exp": "schema_audio2exp.json",
    "audio2pose": "schema_audio2pose.json",
    "face_3drecon": "schema_face_3drecon.json",
}


def write_bundle(path: Path, schema_dir: Path) -> Path:
    tensors = {}
    for prefix, schema in BUNDLE_SCHEMAS.items():
        for key, value in standin_state_dict(schema_dir / schema).items():
            tensors[f"{prefix}.{key}"] = value.contiguous()
    save_file(tensors, str(path))
    return path


def write_mapping(path: Path, schema: Path) -> Path:
    torch.save({"mapping": standin_state_dict(schema), "discriminator": {}, "epoch": 0}, path)
    return path


def write_enhancer(out_dir: Path, schema_dir: Path) -> tuple[Path, Path]:
    """GFPGAN (``{"params_ema": ...}`` like GFPGANv1.4.pth) and ParseNet (bare, like parsing_parsenet.pth)."""
    schema = json.loads((schema_dir / "schema_gfpgan.json").read_text())
    gfpgan, parsenet = out_dir / "GFPGAN_standin.pth", out_dir / "parsenet_standin.pth"
    torch.save({"params_ema": standin_state_dict(schema_dir / "schema_gfpgan.json")}, gfpgan)
    shapes = {key: tuple(shape) for key, shape, *_ in schema["parsenet_state_dict"]}
    torch.save({k: torch.from_numpy(v) for k, v in make_state_dict(shapes).items()}, parsenet)
    return gfpgan, parsenet


def main(out_dir: Path, schema_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bundle(out_dir / "SadTalker_standin.safetensors", schema_dir)
    write_mapping(out_dir / "mapping_crop_standin.pth.tar", schema_dir / "schema_mapping_crop.json")
    write_mapping(out_dir / "mapping_full_standin.pth.tar", schema_dir / "schema_mapping_full.json")
    write_enhancer(out_dir, schema_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
