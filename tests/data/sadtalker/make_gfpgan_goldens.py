"""Schema and golden output of SadTalker's face enhancer network, GFPGANv1Clean, made with the gfpgan package.

SadTalker's ``--enhancer gfpgan`` runs ``gfpgan.GFPGANer(model_path=GFPGANv1.4.pth, upscale=2, arch='clean',
channel_multiplier=2)``, which builds ``GFPGANv1Clean`` with the arguments used below and loads the
checkpoint's ``params_ema`` entry strictly. This script builds that class, records its state-dict layout,
loads the deterministic stand-in weights of ``tests/backends/standin_weights.py`` and runs one forward. It is
the only place gfpgan is imported; the tests read the files it writes:

* ``schema_gfpgan.json``: ``state_dict`` = ordered ``[key, shape, dtype]``.
* ``golden_gfpgan.npz``: input recipe, outputs and notes (see `gfpgan_goldens`); ``paste_*`` entries:
  facexlib's ``FaceRestoreHelper`` aligning two faces and pasting restored crops back with its rectangle mask
  (see `paste_goldens`); ``parse_*`` entries: facexlib's ParseNet (``parsing_parsenet.pth``, the face-parsing
  mask GFPGANer pastes with) and the helper's paste with that mask (see `parse_goldens`).
* ``schema_gfpgan.json`` also lists ParseNet's state dict, under ``parsenet_state_dict``.

Environment: gfpgan 1.3.8 and basicsr 1.4.2 (installed ``--no-deps``; gfpgan's imports also need pyyaml,
addict, yapf, lmdb and requests) on top of torch 2.13.0 (the CUDA wheel, run on CPU), torchvision 0.28.0,
facexlib 0.3.0, numpy 2.4, opencv-python-headless 5.0, Python 3.11, 2 CPU threads::

    python3.11 -m venv /tmp/gfpenv
    /tmp/gfpenv/bin/pip install torch==2.13.0 torchvision==0.28.0 facexlib==0.3.0 numpy opencv-python-headless
    /tmp/gfpenv/bin/pip install --no-deps gfpgan==1.3.8 basicsr==1.4.2
    /tmp/gfpenv/bin/pip install pyyaml addict yapf lmdb requests
    /tmp/gfpenv/bin/python tests/data/sadtalker/make_gfpgan_goldens.py

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, removed in torchvision 0.17; the script
registers a stand-in module of that name holding ``rgb_to_grayscale`` (the one name basicsr takes from it,
for its training degradations) before importing gfpgan. Nothing else is patched.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as tv_functional

_shim = types.ModuleType("torchvision.transforms.functional_tensor")
_shim.rgb_to_grayscale = tv_functional.rgb_to_grayscale  # type: ignore[attr-defined]
sys.modules.setdefault("torchvision.transforms.functional_tensor", _shim)

from facexlib.parsing.parsenet import ParseNet  # noqa: E402
from facexlib.utils.face_restoration_helper import FaceRestoreHelper  # noqa: E402
from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SEED = 4321
PIXEL_RANGE = (96, 161)  # uniform integers, 128 +- 32: a low-contrast image
SUB = 4  # the stored output is subsampled [::4, ::4]
CROP = (slice(224, 288), slice(224, 288))  # plus a full-resolution 64 x 64 crop of the centre
PASTE_IMAGE_HW = (120, 160)
# Five points (eye, eye, nose tip, mouth corner, mouth corner) of two faces in the paste image: an upright
# one, and a larger tilted one reaching past the right and top edges (grey border in its crop).
PASTE_FACES = (
    ((40.0, 50.0), (70.0, 48.0), (56.0, 65.0), (44.0, 80.0), (68.0, 79.0)),
    ((120.0, 22.0), (152.0, 34.0), (133.0, 48.0), (116.0, 64.0), (143.0, 75.0)),
)
CROP_SUB = 4  # the aligned crops are stored subsampled [::4, ::4]
PARSE_SUB = 16  # the ParseNet logits are stored subsampled [::16, ::16]
GFPGANER_ARGS: dict[str, Any] = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}


def make_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The shared stand-in rule, imported by path from tests/backends/standin_weights.py."""
    path = REPO / "tests/backends/standin_weights.py"
    spec = importlib.util.spec_from_file_location("standin_weights", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: torch.from_numpy(v) for k, v in module.make_state_dict(shapes).items()}


def schema(model: torch.nn.Module) -> dict[str, Any]:
    state = model.state_dict()
    entries = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
    return {
        "network": "gfpgan",
        "official_class": "gfpgan.archs.gfpganv1_clean_arch.GFPGANv1Clean("
        + ", ".join(f"{k}={v!r}" for k, v in GFPGANER_ARGS.items())
        + ")",
        "config": "gfpgan 1.3.8 GFPGANer(arch='clean', channel_multiplier=2, upscale=2), as SadTalker's"
        " src/utils/face_enhancer.py builds it for --enhancer gfpgan",
        "key_format_in_files": {
            "GFPGANv1.4.pth": "checkpoint['params_ema'][<key>] (GFPGANer falls back to ['params'] when"
            " there is no params_ema; loaded strict)"
        },
        "safetensors_prefix": None,
        "official_split_rule": None,
        "example_full_key_of_first_entry": {"GFPGANv1.4.pth": f"ckpt['params_ema']['{next(iter(state))}']"},
        "num_entries": len(entries),
        "num_elements": sum(v.numel() for v in state.values()),
        "bytes_as_stored": sum(v.numel() * v.element_size() for v in state.values()),
        "state_dict": entries,
    }


def input_image() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: PCG64(SEED).integers(96, 161)."""
    rng = np.random.Generator(np.random.PCG64(SEED))
    return rng.integers(*PIXEL_RANGE, (512, 512, 3), dtype=np.uint8)


def gfpgan_goldens(model: GFPGANv1Clean) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    image = input_image()
    # GFPGANer: img2tensor(face / 255., bgr2rgb=True) then normalize(0.5, 0.5); we start from RGB directly
    x = torch.from_numpy((image.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None].contiguous()
    latents: list[torch.Tensor] = []
    handle = model.final_linear.register_forward_hook(lambda _m, _i, out: latents.append(out))
    with torch.no_grad():
        out = model(x, return_rgb=False, randomize_noise=False)[0][0].numpy()
        handle.remove()
        out64 = model.double()(x.double(), return_rgb=False, randomize_noise=False)[0][0].numpy()
    model.float()
    latent = latents[0].view(-1, 512).numpy()
    golden = {
        "input_sha256": np.str_(hashlib.sha256(image.tobytes()).hexdigest()),
        "out_sub": out[:, ::SUB, ::SUB],
        "out_crop": out[:, CROP[0], CROP[1]],
        "out_channel_mean": out.mean(axis=(1, 2)),
        "out_channel_std": out.std(axis=(1, 2)),
        "latent": latent,
    }
    noise = {
        "out_std": float(out.std()),
        "out_abs_max": float(np.abs(out).max()),
        "float32_vs_float64_out_max_abs": float(np.abs(out - out64).max()),
        "float32_vs_float64_out_mean_abs": float(np.abs(out - out64).mean()),
        "latent_std": float(latent.std()),
    }
    return golden, noise


def paste_inputs() -> tuple[np.ndarray, np.ndarray]:
    """The paste image (120, 160, 3) and two "restored" 512 x 512 faces, uint8 RGB, from PCG64(SEED + 1)."""
    rng = np.random.Generator(np.random.PCG64(SEED + 1))
    image = rng.integers(0, 256, (*PASTE_IMAGE_HW, 3), dtype=np.uint8)
    restored = rng.integers(0, 256, (len(PASTE_FACES), 512, 512, 3), dtype=np.uint8)
    return image, restored


def with_standins(model: torch.nn.Module) -> torch.nn.Module:
    model.load_state_dict(make_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}))
    return model.eval()


def make_helper(use_parse: bool, parser: ParseNet | None = None) -> FaceRestoreHelper:
    """A FaceRestoreHelper as GFPGANer sets it up, made without ``__init__`` (which loads weights files)."""
    helper = FaceRestoreHelper.__new__(FaceRestoreHelper)
    helper.template_3points = False
    helper.upscale_factor = 2
    helper.crop_ratio = (1, 1)
    helper.face_size = (512, 512)
    helper.face_template = np.array(
        [
            [192.98138, 239.94708],
            [318.90277, 240.1936],
            [256.63416, 314.01935],
            [201.26117, 371.41043],
            [313.08905, 371.15118],
        ]
    )
    helper.pad_blur = False
    helper.use_parse = use_parse
    helper.face_parse = parser
    helper.device = torch.device("cpu")
    helper.clean_all()
    return helper


def run_helper(
    helper: FaceRestoreHelper, image: np.ndarray, restored: np.ndarray, faces: int = len(PASTE_FACES)
) -> np.ndarray:
    """Align the first ``faces`` of PASTE_FACES, take ``restored`` as the restored faces, paste them.

    RGB in and out (BGR inside).
    """
    helper.read_image(np.ascontiguousarray(image[..., ::-1]))
    helper.all_landmarks_5 = [np.array(points) for points in PASTE_FACES[:faces]]
    helper.align_warp_face()
    for face in restored[:faces]:
        helper.add_restored_face(np.ascontiguousarray(face[..., ::-1]))
    helper.get_inverse_affine(None)
    with torch.no_grad():
        pasted = helper.paste_faces_to_input_image()
    return np.ascontiguousarray(pasted[..., ::-1])


def parse_goldens(parser: ParseNet) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """ParseNet logits on the first "restored" face; the helper's paste of that face with its parsing mask."""
    image, restored = paste_inputs()
    face = restored[0]
    # as paste_faces_to_input_image: float32 / 255 (in float32), RGB, normalised with 0.5 / 0.5
    x = torch.from_numpy((face.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        logits = parser(x)[0][0].numpy()
        logits64 = parser.double()(x.double())[0][0].numpy()
    parser.float()
    ordered = np.sort(logits, axis=0)
    golden = {
        "parse_logits_sub": logits[:, ::PARSE_SUB, ::PARSE_SUB],
        "parse_labels": logits.argmax(axis=0).astype(np.uint8),
        "parse_out_u8_rgb": run_helper(make_helper(True, parser), image, restored, faces=1),
    }
    stats = {
        "logit_std": float(logits.std()),
        "float32_vs_float64_logits_max_abs": float(np.abs(logits - logits64).max()),
        "top2_gap_min": float((ordered[-1] - ordered[-2]).min()),
        "labels_differ_from_float64": int((logits.argmax(0) != logits64.argmax(0)).sum()),
    }
    return golden, stats


def paste_goldens() -> dict[str, np.ndarray]:
    """facexlib's alignment and rectangle-mask paste (GFPGANer with use_parse=False) on given landmarks.

    The helper is made without ``__init__`` (which loads the detector and parsing weights) and given the
    attributes ``__init__`` would set for GFPGANer (upscale 2, face 512, crop ratio 1, five-point template).
    facexlib works in BGR; the RGB inputs are flipped to BGR for it and its results flipped back to RGB.
    """
    image, restored = paste_inputs()
    helper = make_helper(False)
    pasted = run_helper(helper, image, restored)
    crops = np.stack(helper.cropped_faces)[..., ::-1]
    return {
        "paste_image_u8_rgb": image,
        "paste_points": np.array(PASTE_FACES),
        "paste_affine": np.stack(helper.affine_matrices),
        "paste_inverse_affine": np.stack(helper.inverse_affine_matrices),  # with the +1 px offset added
        "paste_crops_sub": np.ascontiguousarray(crops[:, ::CROP_SUB, ::CROP_SUB]),
        "paste_crops_sha256": np.array(
            [hashlib.sha256(np.ascontiguousarray(c).tobytes()).hexdigest() for c in crops]
        ),
        "paste_out_u8_rgb": pasted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    model = GFPGANv1Clean(**GFPGANER_ARGS)
    document = schema(model)
    model.load_state_dict(make_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}))
    model.eval()
    golden, noise = gfpgan_goldens(model)
    golden["notes"] = np.str_(
        "gfpgan 1.3.8 GFPGANv1Clean (GFPGANer's 'clean' arguments), stand-in weights, CPU float32. Input:"
        f" u8 = numpy Generator(PCG64({SEED})).integers({PIXEL_RANGE[0]}, {PIXEL_RANGE[1]}, (512, 512, 3),"
        " dtype=uint8) read as RGB (sha256 of its bytes in input_sha256); x = (u8 / 255 - 0.5) / 0.5 in"
        " float32, (1, 3, 512, 512). Forward: model(x, return_rgb=False, randomize_noise=False)[0] (the"
        f" stored noise maps). out_sub = out[0, :, ::{SUB}, ::{SUB}]; out_crop = out[0, :, 224:288, 224:288];"
        " out_channel_mean/std over the full 512 x 512 output; latent = final_linear output viewed"
        f" (16, 512). Stats: {json.dumps(noise)}"
    )
    golden.update(paste_goldens())
    golden["paste_notes"] = np.str_(
        "facexlib 0.3.0 FaceRestoreHelper as GFPGANer sets it up (upscale 2, 512, five-point FFHQ template),"
        " use_parse=False (rectangle mask). rng = PCG64(4322): paste_image_u8_rgb = rng.integers(0, 256,"
        " (120, 160, 3), uint8); restored faces = rng.integers(0, 256, (2, 512, 512, 3), uint8) (not stored),"
        " both RGB, flipped to BGR for facexlib. all_landmarks_5 = paste_points; align_warp_face() ->"
        " paste_affine, crops (RGB; subsampled [::4, ::4] and sha256 of each full crop); get_inverse_affine,"
        " then paste_faces_to_input_image() -> paste_out_u8_rgb (240, 320, 3) and paste_inverse_affine (as"
        " modified in place by the paste: + 0.5 x upscale offset)."
    )
    parsenet = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    document["parsenet_class"] = (
        "facexlib.parsing.parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)"
    )
    document["parsenet_key_format_in_files"] = {
        "parsing_parsenet.pth": "bare state dict, loaded strict by facexlib init_parsing_model('parsenet')"
    }
    document["parsenet_state_dict"] = schema(parsenet)["state_dict"]
    (out / "schema_gfpgan.json").write_text(json.dumps(document, indent=1) + "\n")
    parsed, parse_stats = parse_goldens(with_standins(parsenet))
    golden.update(parsed)
    golden["parse_notes"] = np.str_(
        "facexlib 0.3.0 ParseNet(512, 512, 19) with stand-in weights. Input: the first restored face of the"
        " paste recipe (RGB), x = (float32(u8) / 255 - 0.5) / 0.5 as paste_faces_to_input_image does;"
        f" parse_logits_sub = out_mask[0, :, ::{PARSE_SUB}, ::{PARSE_SUB}], parse_labels = argmax over the 19"
        " classes (uint8, 512 x 512). parse_out_u8_rgb: the paste golden again, but with only the first face"
        " (points and restored face), use_parse=True and this ParseNet as face_parse. Stats:"
        f" {json.dumps(parse_stats)}"
    )
    print("parsenet:", len(document["parsenet_state_dict"]), parse_stats)
    np.savez_compressed(out / "golden_gfpgan.npz", **golden)
    print("gfpgan:", document["num_entries"], {k: v.shape for k, v in golden.items()}, noise)


if __name__ == "__main__":
    main()
