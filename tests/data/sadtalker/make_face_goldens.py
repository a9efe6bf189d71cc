"""Schemas and golden outputs of SadTalker's face detector and landmark net, made with facexlib itself.

SadTalker (``src/utils/croper.py``, ``src/face3d/extract_kp_videos_safe.py``) finds the face with facexlib's
RetinaFace (ResNet-50, ``detection_Resnet50_Final.pth``) and its 98 WFLW landmarks with facexlib's AWing FAN
(``alignment_WFLW_4HG.pth``), then maps them to 68 points. This script builds those facexlib classes, records
their state-dict layout, loads the deterministic stand-in weights of ``tests/backends/standin_weights.py`` and
runs facexlib's own code. It is the only place facexlib is used; the tests read the files it writes:

* ``schema_retinaface.json``, ``schema_awing.json``: ``state_dict`` = ordered ``[key, shape, dtype]``.
* ``golden_retinaface.npz``, ``golden_awing.npz``: inputs, outputs and notes (see `retinaface_goldens`,
  `awing_goldens`; each npz has a ``notes`` string).

Environment (facexlib needs torchvision, whose PyPI wheels need the CUDA build of torch; they run on CPU)::

    python3.11 -m venv /tmp/fxenv
    /tmp/fxenv/bin/pip install --index-url https://pypi.org/simple \\
        torch==2.13.0 torchvision==0.28.0 facexlib==0.3.0 numpy opencv-python-headless
    /tmp/fxenv/bin/python tests/data/sadtalker/make_face_goldens.py

Used: Python 3.11, torch 2.13.0 (CUDA wheel, run on CPU), torchvision 0.28.0, facexlib 0.3.0, numpy 2.4,
opencv-python-headless 5.0, 2 CPU threads. facexlib's ``calculate_points`` uses ``np.float`` (removed in
NumPy 1.24); the script sets ``np.float = float``, which is what it meant (float64), and changes nothing else.

Deliberate convention: RetinaFace is fed BGR (what it was trained on, and what facexlib converts PIL images
to). SadTalker's first detection passes its RGB array unchanged, a bug our backend does not reproduce.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

np.float = float  # type: ignore[attr-defined]  # facexlib's calculate_points still uses the removed alias

from facexlib.alignment import landmark_98_to_68  # noqa: E402
from facexlib.alignment.awing_arch import FAN, calculate_points  # noqa: E402
from facexlib.detection.retinaface import RetinaFace  # noqa: E402
from facexlib.detection.retinaface_utils import PriorBox  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SEED = 1234
SADTALKER_THRESHOLD = 0.97
RAW_SIZE_HW = (100, 140)  # not multiples of 32: exercises the ceil() feature sizes and FPN resizing
RAW_THRESHOLD = 0.5  # low: many priors pass, so decoding and NMS get real work
# Stand-in weights saturate the softmax on full-contrast images: thousands of priors score exactly 1.0, and
# the order of tied scores (NumPy's argsort, then torchvision's NMS) is unspecified and differs between
# machines. The detection goldens therefore use low-contrast inputs, whose scores stay below 1 and are
# (nearly) unique.
RAW_PIXEL_RANGE = (116, 141)  # uniform integers: +-12 around 128
ASTRO_CONTRAST = 0.1  # astronaut pixels mapped to round(128 + 0.1 (v - 128)) for the detection golden
FACE_BOX = (177.6, 55.3, 274.8, 183.9)  # a hand-placed face box on astronaut_512.jpg (x1, y1, x2, y2)
HEATMAP_STRIDE = 4  # the stored heatmaps are subsampled [::4, ::4] to keep the file small


def make_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The shared stand-in rule, imported by path from tests/backends/standin_weights.py."""
    path = REPO / "tests/backends/standin_weights.py"
    spec = importlib.util.spec_from_file_location("standin_weights", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: torch.from_numpy(v) for k, v in module.make_state_dict(shapes).items()}


def schema(model: torch.nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    state = model.state_dict()
    entries = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
    first = next(iter(state))
    examples = info.pop("_example")
    return {
        **info,
        "safetensors_prefix": None,
        "official_split_rule": None,
        "example_full_key_of_first_entry": {name: fmt.format(key=first) for name, fmt in examples.items()},
        "num_entries": len(entries),
        "num_elements": sum(v.numel() for v in state.values()),
        "bytes_as_stored": sum(v.numel() * v.element_size() for v in state.values()),
        "state_dict": entries,
    }


def with_standins(model: torch.nn.Module) -> torch.nn.Module:
    model.load_state_dict(make_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()}))
    return model.eval()


def raw_forward(
    model: RetinaFace, image_bgr: np.ndarray, dtype: torch.dtype = torch.float32
) -> list[np.ndarray]:
    """facexlib's detect_faces up to the network outputs (transform, mean subtraction, forward)."""
    tensor, _ = model.transform(image_bgr, use_origin_size=True)
    with torch.no_grad():
        outputs = model.to(dtype)(tensor.to(dtype) - model.mean_tensor.to(dtype))
    model.float()
    return [o[0].float().numpy() for o in outputs]


def retinaface_goldens(astronaut_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    model = with_standins(RetinaFace(network_name="resnet50", half=False, device="cpu"))
    rng = np.random.Generator(np.random.PCG64(SEED))
    image = rng.integers(*RAW_PIXEL_RANGE, (*RAW_SIZE_HW, 3), dtype=np.uint8)
    astro_low = np.round(128 + ASTRO_CONTRAST * (astronaut_bgr.astype(np.float64) - 128)).astype(np.uint8)
    loc, conf, landms = raw_forward(model, image)
    loc64, conf64, landms64 = raw_forward(model, image, torch.float64)
    priors = PriorBox(model.cfg, image_size=RAW_SIZE_HW).forward().numpy()
    with torch.no_grad():
        raw_dets = model.detect_faces(image, RAW_THRESHOLD)
        astro_dets = model.detect_faces(astro_low, SADTALKER_THRESHOLD)
    _, astro_conf, _ = raw_forward(model, astro_low)
    golden = {
        "raw_input_u8_bgr": image,
        "raw_out_loc": loc,
        "raw_out_conf": conf,
        "raw_out_landms": landms,
        "raw_priors": priors,
        "raw_threshold": np.float64(RAW_THRESHOLD),
        "raw_dets": raw_dets.astype(np.float32),
        "astro_bgr_sha256": np.str_(hashlib.sha256(astronaut_bgr.tobytes()).hexdigest()),
        "astro_low_contrast_out_face_scores": astro_conf[:, 1],
        "astro_low_contrast_dets_sadtalker": astro_dets.astype(np.float32).reshape(-1, 15),
    }
    noise = {
        "loc": float(np.abs(loc - loc64).max()),
        "conf": float(np.abs(conf - conf64).max()),
        "landms": float(np.abs(landms - landms64).max()),
    }
    return golden, noise


def awing_goldens(astronaut_rgb: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    model = with_standins(FAN(num_modules=4, num_landmarks=98, device="cpu"))
    box = np.array(FACE_BOX, dtype=np.float32)
    crop = astronaut_rgb[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])]
    stacks: list[np.ndarray] = []
    inputs: list[torch.Tensor] = []
    forward = model.forward

    def recording_forward(x: torch.Tensor) -> Any:  # get_landmarks calls self.forward, so hooks never fire
        inputs.append(x)
        outputs = forward(x)
        stacks.extend(o[0].numpy() for o in outputs[0])
        return outputs

    model.forward = recording_forward  # type: ignore[method-assign]
    with torch.no_grad():
        points98 = model.get_landmarks(crop)  # SadTalker: detector.get_landmarks(img), img = RGB crop
    del model.forward
    with torch.no_grad():
        last64 = model.double()(inputs[0].double())[0][-1][0].numpy()
    model.float()
    lm68 = landmark_98_to_68(points98)
    lm68[:, 0] += int(box[0])
    lm68[:, 1] += int(box[1])
    last = stacks[-1]
    maps = last[:-1].reshape(98, -1)
    ordered = np.sort(maps, axis=1)

    rng = np.random.Generator(np.random.PCG64(SEED + 1))
    decode_cases = decode_case_heatmaps(rng)
    points_in = rng.standard_normal((98, 2)) * 40 + 128
    golden = {
        "input_box_xyxy": box,
        "input_crop_u8_rgb": np.ascontiguousarray(crop),
        "out_heatmaps_last_sub": last[:, ::HEATMAP_STRIDE, ::HEATMAP_STRIDE],
        "out_heatmaps_abs_mean": np.stack([np.abs(s).mean(axis=(1, 2)) for s in stacks]).astype(np.float32),
        "out_heatmaps_last_channels_0_50_97_98": last[[0, 50, 97, 98]],
        "out_argmax_last": maps.argmax(axis=1),
        "out_points98_heatmap": calculate_points(last[None, :-1])[0],
        "out_points98_crop": points98,
        "out_lm68": lm68,
        "map_in_points98": points_in,
        "map_out_points68": landmark_98_to_68(points_in),
    }
    for name, maps_case in decode_cases.items():
        golden[f"decode_{name}_checksum"] = np.float64(maps_case.astype(np.float64).sum())
        golden[f"decode_{name}_points"] = calculate_points(maps_case[None])[0]
    stats = {
        "stack_std": [float(s.std()) for s in stacks],
        "top2_gap_min": float((ordered[:, -1] - ordered[:, -2]).min()),
        "float32_vs_float64_last_stack_max_abs": float(np.abs(last - last64).max()),
    }
    return golden, stats


def decode_case_heatmaps(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Heatmap sets for calculate_points: (N, 64, 64) float32, drawn in this order from ``rng``.

    ``interior``: 6 maps N(0, 1) with a peak of 10 planted at cell (20 + 5k, 10 + 7k), k = 0..5; no point near
    an edge, so every neighbour is read normally. ``edges``: 6 maps N(0, 1) with peaks of 10 at flat indices
    [0, 63, 64, 130, 4032, 4094] (first cell, end of row 0, start of row 1, interior, start of the last row,
    last-but-one cell): x neighbours wrap across rows and both global y fallbacks trigger.
    """
    cases = {}
    for name, flat_peaks in (
        ("interior", [(20 + 5 * k) * 64 + 10 + 7 * k for k in range(6)]),
        ("edges", [0, 63, 64, 130, 4032, 4094]),
    ):
        maps = rng.standard_normal((6, 64 * 64)).astype(np.float32)
        maps[np.arange(6), flat_peaks] = 10.0
        cases[name] = maps.reshape(6, 64, 64)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    # The pixels OpenCV 5.0 decoded from astronaut_512.jpg, stored losslessly (JPEG decoders may differ).
    astronaut_bgr = cv2.imread(str(REPO / "tests/data/astronaut_512_pixels.png"), cv2.IMREAD_COLOR)
    astronaut_rgb = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB)

    retina_info = {
        "network": "retinaface",
        "official_class": "facexlib.detection.retinaface.RetinaFace(network_name='resnet50')",
        "config": "facexlib 0.3.0, cfg_re50 (ResNet-50 body via torchvision IntermediateLayerGetter)",
        "key_format_in_files": {
            "detection_Resnet50_Final.pth": "bare state dict; facexlib strips a leading 'module.' from any"
            " key that has one before load_state_dict(strict=True)"
        },
        "_example": {"detection_Resnet50_Final.pth": "ckpt['{key}'] or ckpt['module.{key}']"},
    }
    awing_info = {
        "network": "awing",
        "official_class": "facexlib.alignment.awing_arch.FAN(num_modules=4, num_landmarks=98)",
        "config": "facexlib 0.3.0 init_alignment_model('awing_fan'); copy in SadTalker"
        " src/face3d/util/my_awing_arch.py",
        "key_format_in_files": {
            "alignment_WFLW_4HG.pth": "checkpoint['state_dict'][<key>] (no prefix; facexlib loads it strict)"
        },
        "_example": {"alignment_WFLW_4HG.pth": "ckpt['state_dict']['{key}']"},
    }
    retina = RetinaFace(network_name="resnet50", device="cpu")
    write_json(out / "schema_retinaface.json", schema(retina, retina_info))
    awing = FAN(num_modules=4, num_landmarks=98, device="cpu")
    write_json(out / "schema_awing.json", schema(awing, awing_info))

    golden, noise = retinaface_goldens(astronaut_bgr)
    golden["notes"] = np.str_(
        "facexlib 0.3.0 RetinaFace(resnet50), stand-in weights. raw_*: rng PCG64(1234).integers(116, 141,"
        " (100,140,3)) uint8 as a BGR image through transform(use_origin_size=True) - mean_tensor -> forward"
        " (loc, softmax conf, landms; batch dim dropped); raw_priors = PriorBox(cfg, (100,140)).forward();"
        f" raw_dets = detect_faces(image, {RAW_THRESHOLD}) rows (x1,y1,x2,y2,score, 5 landmark (x,y))."
        " astro_*: tests/data/astronaut_512.jpg read by cv2.imread (BGR, sha256 of its pixels given);"
        " astro_low_contrast_* use round(128 + 0.1 (image - 128)) as uint8 (full contrast saturates the"
        " stand-in scores into ties, whose order is unspecified): _out_face_scores = softmax conf[:, 1] of"
        " all priors, _dets_sadtalker = detect_faces(image, 0.97). float32 vs float64 forward max"
        f" abs diff: {json.dumps(noise)}"
    )
    np.savez_compressed(out / "golden_retinaface.npz", **golden)
    print("retinaface:", {k: v.shape for k, v in golden.items()}, noise)

    golden, stats = awing_goldens(astronaut_rgb)
    golden["notes"] = np.str_(
        "facexlib 0.3.0 FAN(4, 98) with stand-in weights. input_crop_u8_rgb = astronaut_512 RGB"
        " [int(y1):int(y2), int(x1):int(x2)] of input_box_xyxy; out_points98_crop = get_landmarks(crop);"
        " out_lm68 = landmark_98_to_68(points) + (int(x1), int(y1)) as SadTalker does. Heatmaps: last stack"
        f" subsampled [::{HEATMAP_STRIDE}, ::{HEATMAP_STRIDE}] (99 channels incl. boundary), channels"
        " 0/50/97/98 in full, per-stack mean |h| per channel. decode_*: see decode_case_heatmaps (rng"
        f" PCG64(1235), then map_in_points98 = 40*N(0,1)+128). Stats: {json.dumps(stats)}"
    )
    np.savez_compressed(out / "golden_awing.npz", **golden)
    print("awing:", {k: v.shape for k, v in golden.items()}, stats)


def write_json(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=1)
    path.write_text(text + "\n")


if __name__ == "__main__":
    main()
