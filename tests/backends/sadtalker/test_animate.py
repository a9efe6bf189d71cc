"""SadTalker face-render loop: parity with the official make_animation (stand-in weights, 256 px)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into
from lipsync_sadtalker.animate import (
    FaceRenderNets,
    PreparedSource,
    animate,
    driving_keypoints,
    prepare_source,
)
from lipsync_sadtalker.generator import OcclusionAwareSPADEGenerator
from lipsync_sadtalker.keypoint_detector import KPDetector
from lipsync_sadtalker.mapping import MappingNet
from lipsync_sadtalker.render_inputs import DrivingFrames, RenderInputs, official_step_frames
from standin import load_golden, standin_state_dict
from tolerances import assert_parity

# reference/sadtalker/README.md, make_animation: kp_* atol 1e-5; predictions atol 2e-2 and mean < 2e-4.
KP_ATOL = 1e-5
PREDICTION_ATOL = 2e-2
PREDICTION_MEAN_ATOL = 2e-4
NUM_FRAMES = 3  # the golden's clip (call1 of golden_facerender_data): batch 2, padded to 4
BATCH_SIZE = 2


@pytest.fixture(scope="module")
def golden(sadtalker_data: Path) -> dict[str, np.ndarray]:
    return load_golden(sadtalker_data / "golden_make_animation.npz")


@pytest.fixture(scope="module")
def nets(sadtalker_data: Path) -> FaceRenderNets:
    kp_detector, mapping, generator = KPDetector(), MappingNet(70), OcclusionAwareSPADEGenerator()
    for net, schema in (
        (kp_detector, "schema_kp_detector.json"),
        (mapping, "schema_mapping_crop.json"),
        (generator, "schema_generator.json"),
    ):
        load_into(net, standin_state_dict(sadtalker_data / schema), source="stand-in")
        net.eval()
    generator.prepare_for_inference()
    return FaceRenderNets(kp_detector, mapping, generator)


@pytest.fixture(scope="module")
def inputs(golden: dict[str, np.ndarray]) -> RenderInputs:
    """The golden's official (batch, step) inputs back in time order, without the padding frame."""
    windows = torch.from_numpy(golden["input_target_semantics"])  # (batch, steps, 70, 27)
    return RenderInputs(
        source_image=torch.from_numpy(golden["input_source_image_b0"]),
        source_semantics=torch.from_numpy(golden["input_source_semantics"][:1]),
        driving=DrivingFrames(windows.flatten(0, 1)[:NUM_FRAMES]),
    )


@pytest.fixture(scope="module")
def source(nets: FaceRenderNets, inputs: RenderInputs) -> PreparedSource:
    return prepare_source(nets, inputs.source_image, inputs.source_semantics)


def _official_layout(per_frame: torch.Tensor) -> np.ndarray:
    return per_frame[official_step_frames(NUM_FRAMES, BATCH_SIZE).T].numpy()


def test_source_keypoints_match_golden(source: PreparedSource, golden: dict[str, np.ndarray]) -> None:
    for name in ("kp_canonical", "kp_source"):
        assert_parity(getattr(source, name).expand(BATCH_SIZE, -1, -1).numpy(), golden[name], KP_ATOL, name)


def test_driving_keypoints_match_golden(
    nets: FaceRenderNets, source: PreparedSource, inputs: RenderInputs, golden: dict[str, np.ndarray]
) -> None:
    kp_driving = driving_keypoints(nets, source, inputs.driving)
    assert kp_driving.shape == (NUM_FRAMES, 15, 3)
    expected = golden["kp_driving_per_step"]
    assert_parity(_official_layout(kp_driving), expected, KP_ATOL, "kp_driving_per_step")


def test_driving_keypoints_do_not_depend_on_grouping(
    nets: FaceRenderNets, source: PreparedSource, inputs: RenderInputs
) -> None:
    together = driving_keypoints(nets, source, inputs.driving)
    order = [2, 0, 1]
    shuffled = driving_keypoints(nets, source, inputs.driving.take(order))
    torch.testing.assert_close(shuffled, together[order], rtol=0, atol=KP_ATOL)
    one = driving_keypoints(nets, source, inputs.driving.take([1]))
    torch.testing.assert_close(one, together[1:2], rtol=0, atol=KP_ATOL)


def test_predictions_match_golden(
    nets: FaceRenderNets, inputs: RenderInputs, golden: dict[str, np.ndarray]
) -> None:
    calls: list[tuple[int, int]] = []
    batches = list(animate(nets, inputs, batch_size=BATCH_SIZE, progress=lambda *call: calls.append(call)))
    assert [len(batch) for batch in batches] == [2, 1]
    assert calls == [(2, NUM_FRAMES), (3, NUM_FRAMES)]
    frames = torch.cat(batches)
    assert torch.isfinite(frames).all()
    got = _official_layout(frames)  # the padding row repeats frame 2, as the official loop renders it
    expected = golden["out_predictions"]
    assert got.shape == expected.shape
    error = np.abs(got - expected)
    assert error.max() <= PREDICTION_ATOL, f"max abs diff {error.max():.3g}"
    assert error.mean() < PREDICTION_MEAN_ATOL, f"mean abs diff {error.mean():.3g}"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("full_fp32")
def test_cuda_matches_golden(
    nets: FaceRenderNets, inputs: RenderInputs, golden: dict[str, np.ndarray]
) -> None:
    cuda = FaceRenderNets(
        *(copy.deepcopy(net).cuda() for net in (nets.kp_detector, nets.mapping, nets.generator))
    )
    cuda.generator.prepare_for_inference()
    source = prepare_source(cuda, inputs.source_image, inputs.source_semantics)
    kp_driving = driving_keypoints(cuda, source, inputs.driving).cpu()
    frames = torch.cat(list(animate(cuda, inputs, batch_size=BATCH_SIZE))).cpu()
    assert_parity(source.kp_source.cpu().expand(BATCH_SIZE, -1, -1).numpy(), golden["kp_source"], KP_ATOL)
    assert_parity(_official_layout(kp_driving), golden["kp_driving_per_step"], KP_ATOL, "kp_driving")
    error = np.abs(_official_layout(frames) - golden["out_predictions"])
    assert error.max() <= PREDICTION_ATOL and error.mean() < PREDICTION_MEAN_ATOL, (error.max(), error.mean())
