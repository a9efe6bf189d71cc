"""Stand-in checkpoints for SadTalker's face front end, in the official file formats.

    python make_face_standins.py OUT_DIR

(run with the SadTalker backend's Python and ``backends/common``, ``backends/sadtalker`` and
``tests/backends`` on ``PYTHONPATH``). Writes, in the containers of the real files:

* ``detection_Resnet50_standin.pth``: the plain stand-in RetinaFace, a bare state dict with ``module.``
  prefixes (as ``detection_Resnet50_Final.pth`` most likely has; facexlib strips a leading ``module.``).
  On photos its softmax saturates and it "finds" hundreds of meaningless boxes.
* ``detection_Resnet50_astronaut.pth``: finds exactly one face on ``tests/data/astronaut_512.jpg``, at
  `ASTRONAUT_FACE_BOX` (see `finding_detector`), and usually nothing on other images.
* ``detection_Resnet50_blind.pth``: never finds a face (see `blind_detector`).
* ``alignment_WFLW_4HG_standin.pth``: ``{"state_dict": ...}`` (no prefix), the plain stand-in AWing.
* ``alignment_WFLW_4HG_mean_shape.pth``: an AWing whose heatmaps put a mean face shape into any box, so crops
  computed from its landmarks look like real face crops (see `mean_shape_aligner`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lipsync_sadtalker import landmarks, retinaface
from standin import standin_state_dict

DATA_DIR: Final = Path(__file__).resolve().parents[2] / "data"
SCHEMA_DIR: Final = DATA_DIR / "sadtalker"
ASTRONAUT: Final = DATA_DIR / "astronaut_512.jpg"

# Read off astronaut_512.jpg by eye: a RetinaFace-like box (forehead to chin, cheek to cheek) and five points
# (eye centres, nose tip, mouth corners), in pixels.
ASTRONAUT_FACE_BOX: Final = (181.0, 70.0, 268.0, 184.0)
ASTRONAUT_FIVE_POINTS: Final = (
    (201.7, 100.7),
    (246.7, 101.7),
    (225.0, 125.0),
    (205.0, 143.3),
    (245.0, 143.3),
)
FINDING_LEVEL: Final = 1  # stride 16, priors of 64 and 128 px: the astronaut's face is ~90 x 115 px
FINDING_ANCHOR: Final = 1  # the 128 px prior
TARGET_LOGIT: Final = 8.0  # face-minus-background logit at the face: score 0.9997
CUTOFF_LOGIT: Final = 3.0  # logit half-way to the runner-up cell: score 0.953, below SadTalker's 0.97
OFF_LOGIT: Final = 20.0  # background-minus-face logit of every silenced prior
HEATMAP_GAIN: Final = 100.0  # sharpens the mean-shape heatmaps (argmax and decoding do not depend on it)


def detector_standin() -> dict[str, Tensor]:
    return standin_state_dict(SCHEMA_DIR / "schema_retinaface.json")


def aligner_standin() -> dict[str, Tensor]:
    return standin_state_dict(SCHEMA_DIR / "schema_awing.json")


def blind_detector(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Zero every class head and bias it to background, so no prior ever scores as a face."""
    out = dict(state)
    for level in range(len(retinaface.STEPS)):
        _silence(out, level)
    return out


def _silence(state: dict[str, Tensor], level: int) -> None:
    weight, bias = f"ClassHead.{level}.conv1x1.weight", f"ClassHead.{level}.conv1x1.bias"
    state[weight] = torch.zeros_like(state[weight])
    state[bias] = torch.tensor([OFF_LOGIT, -OFF_LOGIT] * (len(state[bias]) // 2))  # (background, face) pairs


def finding_detector(
    state: dict[str, Tensor],
    image_rgb: np.ndarray,
    box: tuple[float, float, float, float] = ASTRONAUT_FACE_BOX,
    points: tuple[tuple[float, float], ...] = ASTRONAUT_FIVE_POINTS,
    level: int = FINDING_LEVEL,
) -> dict[str, Tensor]:
    """A detector that finds exactly ``box`` (with ``points``) in ``image_rgb`` and scores it 0.9997.

    How: every class head is silenced except one prior of level ``level``, whose face logit becomes a
    linear filter, ``alpha * w . (f - mu) + beta``, on the stand-in network's SSH features ``f`` of that
    level, with ``mu`` their mean over cells and ``w = f_c - mu`` for the cell ``c`` holding the box centre.
    The cell ``t`` where the filter responds most (not necessarily ``c``) gets logit `TARGET_LOGIT`;
    ``alpha, beta`` keep every other cell below `CUTOFF_LOGIT` (midway to the runner-up). The box and
    landmark heads of that level get zero weights and biases that decode cell ``t``'s prior into ``box``
    and ``points`` (every cell of the level proposes a box of that size, shifted by its own position).

    Only that image is found reliably: on the 256 px face crop SadTalker's second pass looks at, this
    detector finds nothing (so that pass falls back to the standard face), and a second filter tuned on the
    crop also fires all over the photo.
    """
    step, size = retinaface.STEPS[level], retinaface.MIN_SIZES[level][FINDING_ANCHOR]
    feats = _level_features(state, image_rgb, level).double()  # (256, fh, fw)
    flat = feats.flatten(1)
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    mean = flat.mean(dim=1)
    w = flat[:, int(centre_y // step) * feats.shape[2] + int(centre_x // step)] - mean
    response = w @ (flat - mean[:, None])
    target = int(response.argmax())
    similarity = response / response[target]
    runner_up = similarity[torch.arange(flat.shape[1]) != target].max().item()
    if runner_up > 1 - 1e-3:
        raise ValueError(f"no cell stands out on this image (runner-up similarity {runner_up:.6f})")
    alpha = 2 * (TARGET_LOGIT - CUTOFF_LOGIT) / (1 - runner_up)
    beta = TARGET_LOGIT - alpha

    out = dict(state)
    for other in range(len(retinaface.STEPS)):
        _silence(out, other)
    prefix = f"ClassHead.{level}.conv1x1"
    face = 2 * FINDING_ANCHOR + 1
    gain = alpha / response[target]  # the logit is alpha * similarity + beta
    out[f"{prefix}.weight"][face, :, 0, 0] = (gain * w).float()
    out[f"{prefix}.bias"][face - 1 : face + 1] = torch.tensor([0.0, beta - (gain * (w @ mean)).item()])

    prior_x = (target % feats.shape[2] + 0.5) * step
    prior_y = (target // feats.shape[2] + 0.5) * step
    offsets = [
        (centre_x - prior_x) / (retinaface.VARIANCES[0] * size),
        (centre_y - prior_y) / (retinaface.VARIANCES[0] * size),
        math.log((box[2] - box[0]) / size) / retinaface.VARIANCES[1],
        math.log((box[3] - box[1]) / size) / retinaface.VARIANCES[1],
    ]
    point_offsets = [
        (coord - prior) / (retinaface.VARIANCES[0] * size)
        for x, y in points
        for coord, prior in ((x, prior_x), (y, prior_y))
    ]
    for head, values in (("BboxHead", offsets), ("LandmarkHead", point_offsets)):
        weight, bias = f"{head}.{level}.conv1x1.weight", f"{head}.{level}.conv1x1.bias"
        out[weight] = torch.zeros_like(state[weight])
        out[bias] = torch.zeros_like(state[bias])
        n = len(values)
        out[bias][FINDING_ANCHOR * n : (FINDING_ANCHOR + 1) * n] = torch.tensor(values)
    return out


def _level_features(state: dict[str, Tensor], image_rgb: np.ndarray, level: int) -> Tensor:
    net = retinaface.RetinaFace()
    net.load_state_dict(state)
    net.eval()
    captured: list[Tensor] = []
    ssh = net.get_submodule(f"ssh{level + 1}")
    handle = ssh.register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
    with torch.inference_mode():
        net(retinaface.preprocess(image_rgb))
    handle.remove()
    return captured[0].clone()


def mean_face98() -> np.ndarray:
    """(98, 2) WFLW points in box-relative units ([0, 1] across a RetinaFace-like box), built from SadTalker's
    standard 68-point face (``similarity_Lm3D_all``): jaw spanning 3-97 % of the width, brows' top at 15 % and
    chin at 97 % of the height. WFLW points without a 68-point counterpart are midpoints of their neighbours
    (eye centres for the pupils 96, 97)."""
    facts = json.loads((SCHEMA_DIR / "facts_sadtalker.json").read_text())
    std = np.asarray(facts["similarity_Lm3D_all"]["lm68_xyz"], dtype=np.float64)[:, :2] * (1, -1)  # y down
    x0, x1 = std[:17, 0].min(), std[:17, 0].max()
    y0, y1 = std[17:27, 1].min(), std[8, 1]
    lm68 = np.stack(
        [0.03 + 0.94 * (std[:, 0] - x0) / (x1 - x0), 0.15 + 0.82 * (std[:, 1] - y0) / (y1 - y0)], axis=1
    )
    points = np.full((98, 2), np.nan)
    for i68, sources in enumerate(landmarks.LANDMARKS_98_TO_68):
        points[list(sources)] = lm68[i68]
    for i in range(98):
        if np.isnan(points[i, 0]) and i < 96:
            points[i] = (points[i - 1] + points[i + 1]) / 2
    points[96] = lm68[36:42].mean(axis=0)
    points[97] = lm68[42:48].mean(axis=0)
    return points


def mean_shape_aligner(state: dict[str, Tensor], shape98: np.ndarray | None = None) -> dict[str, Tensor]:
    """An AWing whose last stack outputs ``-gain * |p - p_n|^2`` around each point ``p_n`` of ``shape98``.

    How: the last hourglass's CoordConv keeps only the row and column coordinate channels (+1, so both are
    in [0, 2]); every ConvBlock of that hourglass and ``top_m_3`` passes its input through (zero BatchNorm
    scales), except ``b2_4``, whose first conv cancels its shortcut so the pooled branch adds nothing. Then
    ``conv_last3`` + ReLU builds the coordinates and hinge functions ``relu(r - r_k)`` at every grid row and
    column, whose sum with the right slopes is exactly ``r^2`` on the grid, and ``l3`` combines them into
    ``-(r - r_n)^2 - (c - c_n)^2``. The heatmaps do not depend on the image at all.
    """
    shape98 = mean_face98() if shape98 is None else shape98
    grid = landmarks.HEATMAP_SIZE
    unit = 2.0 / (grid - 1)  # coordinate step between heatmap cells
    out = dict(state)

    def edit(key: str) -> Tensor:
        """``out[key]``, copied on first use so that ``state`` stays as it is."""
        if out[key] is state[key]:
            out[key] = state[key].clone()
        return out[key]

    def identity_block(name: str) -> None:
        for bn in ("bn1", "bn2", "bn3"):
            edit(f"{name}.{bn}.weight").zero_()
            edit(f"{name}.{bn}.bias").zero_()

    def plain_bn(name: str) -> None:
        edit(f"{name}.weight").fill_(1.0)
        edit(f"{name}.bias").zero_()
        edit(f"{name}.running_mean").zero_()
        edit(f"{name}.running_var").fill_(1.0)

    last = landmarks.NUM_STACKS - 1
    hourglass = f"m{last}"
    coord_w, coord_b = edit(f"{hourglass}.coordconv.conv.weight"), edit(f"{hourglass}.coordconv.conv.bias")
    coord_w.zero_()
    coord_b.zero_()
    features = landmarks.FEATURES
    coord_w[0, features, 0, 0] = 1.0  # row coordinate
    coord_w[1, features + 1, 0, 0] = 1.0  # column coordinate
    coord_b[:2] = 1.0
    blocks = {k.rsplit(".", 2)[0] for k in out if k.startswith(f"{hourglass}.b") and ".bn1." in k}
    for block in blocks:
        identity_block(block)
    identity_block(f"top_m_{last}")
    cancel = f"{hourglass}.b2_{landmarks.HOURGLASS_DEPTH}"
    plain_bn(f"{cancel}.bn1")
    edit(f"{cancel}.conv1.weight").zero_()
    edit(f"{cancel}.conv1.weight")[[0, 1], [0, 1], 1, 1] = -1.0

    # conv_last units: 0, 1 = r, c; then relu(r - r_k) and relu(c - c_k) for the 62 inner grid lines k.
    knots = unit * np.arange(1, grid - 1)
    hidden_w, hidden_b = edit(f"conv_last{last}.weight"), edit(f"conv_last{last}.bias")
    hidden_w.zero_()
    hidden_b.zero_()
    hidden_w[0, 0], hidden_w[1, 1] = 1.0, 1.0
    for axis in (0, 1):
        units = 2 + axis * len(knots) + np.arange(len(knots))
        hidden_w[units, axis] = 1.0
        hidden_b[units] = torch.from_numpy(-knots).float()
    plain_bn(f"bn_end{last}")

    # Target coordinates: decoding maps cell c to (c + 0.5) / 64 of the box; coordinates are 2 * cell / 63.
    cols = (shape98[:, 0] * grid - 0.5) * unit
    rows = (shape98[:, 1] * grid - 0.5) * unit
    head_w, head_b = edit(f"l{last}.weight"), edit(f"l{last}.bias")
    head_w.zero_()
    head_b.zero_()
    square = np.full(len(knots), 2 * unit)  # r^2 = unit * r + sum_k 2 * unit * relu(r - r_k) on the grid
    for n, (row, col) in enumerate(zip(rows, cols, strict=True)):
        head_w[n, 0, 0, 0] = HEATMAP_GAIN * (2 * row - unit)
        head_w[n, 1, 0, 0] = HEATMAP_GAIN * (2 * col - unit)
        head_w[n, 2 : 2 + 2 * len(knots), 0, 0] = torch.from_numpy(-HEATMAP_GAIN * np.tile(square, 2)).float()
        head_b[n] = -HEATMAP_GAIN * (row**2 + col**2)
    return out


def write_checkpoints(out_dir: Path, image_rgb: np.ndarray | None = None) -> dict[str, Path]:
    """Write every stand-in file into ``out_dir``; returns {variant: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if image_rgb is None:
        image_rgb = cv2.cvtColor(cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    detector, aligner = detector_standin(), aligner_standin()
    files = {
        "detection_Resnet50_standin.pth": detector,
        "detection_Resnet50_astronaut.pth": finding_detector(detector, image_rgb),
        "detection_Resnet50_blind.pth": blind_detector(detector),
    }
    paths = {}
    for name, state in files.items():
        paths[name] = out_dir / name
        torch.save({f"module.{k}": v for k, v in state.items()}, paths[name])
    for name, state in (
        ("alignment_WFLW_4HG_standin.pth", aligner),
        ("alignment_WFLW_4HG_mean_shape.pth", mean_shape_aligner(aligner)),
    ):
        paths[name] = out_dir / name
        torch.save({"state_dict": state}, paths[name])
    return paths


if __name__ == "__main__":
    for path in write_checkpoints(Path(sys.argv[1])).values():
        print(path)
