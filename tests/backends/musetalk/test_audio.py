"""MuseTalk speech features against the official AudioProcessor goldens (stand-in Whisper-tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.errors import BackendError
from lipsync_musetalk.audio import AudioWindows, encode_speech, plan_windows, speech_features
from lipsync_musetalk.models import load_feature_extractor, load_whisper_encoder
from lipsync_musetalk.positional_encoding import add_positions, position_table
from standin import load_golden
from tolerances import assert_parity

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def golden(musetalk_data: Path) -> dict[str, np.ndarray]:
    return load_golden(musetalk_data / "golden_audio.npz")


@pytest.fixture(scope="module")
def features(golden: dict[str, np.ndarray], whisper_standin: Path) -> list[torch.Tensor]:
    extractor = load_feature_extractor(whisper_standin / "whisper_preprocessor_config.json")
    return speech_features(golden["wav"], extractor)


@pytest.fixture(scope="module")
def states(
    golden: dict[str, np.ndarray], features: list[torch.Tensor], whisper_standin: Path
) -> torch.Tensor:
    encoder = load_whisper_encoder(
        whisper_standin / "whisper_standin.safetensors", whisper_standin / "whisper_config.json", CPU
    )
    with torch.inference_mode():
        return encode_speech(features, encoder, len(golden["wav"]))


def test_log_mel_matches_official(features: list[torch.Tensor], golden: dict[str, np.ndarray]) -> None:
    assert len(features) == 1
    assert_parity(features[0].numpy(), golden["input_features"], atol=1e-5, name="input_features")


def test_stacked_hidden_states_match_official(states: torch.Tensor, golden: dict[str, np.ndarray]) -> None:
    assert states.shape == (100, 5, 384)
    assert_parity(states.numpy(), golden["hidden_states_stacked_first100"][0], atol=1e-4, name="hidden")


def test_frame_windows_match_official(states: torch.Tensor, golden: dict[str, np.ndarray]) -> None:
    windows = AudioWindows(states, plan_windows(int(golden["num_samples"]), 25))
    assert len(windows) == 50
    chunks = windows.batch(slice(0, len(windows)))
    assert_parity(chunks.numpy(), golden["whisper_chunks"], atol=1e-4, name="whisper_chunks")
    # A batch from the middle gathers the same rows as the whole.
    np.testing.assert_array_equal(windows.batch(np.arange(7, 10)).numpy(), chunks[7:10].numpy())


def test_position_table_is_the_official_one(golden: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(position_table(50, 384).numpy(), golden["pe_table_first50"])
    tokens = torch.from_numpy(golden["whisper_chunks"][:2])
    np.testing.assert_array_equal(
        add_positions(tokens).numpy(), (tokens + torch.from_numpy(golden["pe_table_first50"])).numpy()
    )


def test_long_speech_is_encoded_in_30_second_segments(whisper_standin: Path) -> None:
    extractor = load_feature_extractor(whisper_standin / "whisper_preprocessor_config.json")
    samples = np.zeros(496_000, dtype=np.float32)  # 31 s: one whole segment and one second more
    features = speech_features(samples, extractor)
    assert [tuple(f.shape) for f in features] == [(1, 80, 3000), (1, 80, 3000)]


# --------------------------------------------------------------------------- the window rule


def _window_cases(musetalk_data: Path) -> list[dict]:
    return json.loads((musetalk_data / "golden_audio_windows.json").read_text())["cases"]


CASES = _window_cases(Path(__file__).resolve().parents[2] / "data" / "musetalk")


def _steps(plan, frame: int) -> list[int]:
    """Original encoder step read at each window position, -1 for zero padding (the golden's notation)."""
    positions = plan.starts[frame] + np.arange(10) - plan.pad_left
    return [int(p) if 0 <= p < plan.actual_steps else -1 for p in positions]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['fps']}fps-{c['num_samples']}")
def test_window_rule_matches_official(case: dict) -> None:
    if "official_result" in case:  # the official code exits: we refuse the frame rate cleanly instead
        with pytest.raises(BackendError) as caught:
            plan_windows(case["num_samples"], case["fps"])
        assert caught.value.code == "bad_option"
        assert "fps" in str(caught.value)
        return
    plan = plan_windows(case["num_samples"], case["fps"])
    assert (plan.int_fps, plan.num_frames, plan.actual_steps) == (
        case["int_fps"],
        case["num_frames"],
        case["actual_length_steps"],
    )
    assert (plan.pad_left, plan.pad_right) == (case["left_pad_steps"], case["right_pad_steps"])
    assert plan.starts.tolist() == case["window_start_in_padded"]
    assert [_steps(plan, i) for i in range(3)] == case["steps_first3_frames"]
    assert [_steps(plan, i) for i in (-2, -1)] == case["steps_last2_frames"]


@pytest.mark.parametrize("fps", [1, 7.5, 17, 23.976, 33, 49.9])
@pytest.mark.parametrize("num_samples", [1_000, 16_001, 123_457, 496_000])
def test_every_window_lies_inside_the_padding_below_50_fps(fps: float, num_samples: int) -> None:
    try:
        plan = plan_windows(num_samples, fps)
    except BackendError as err:
        assert err.code == "audio_too_short" and num_samples / 16_000 * int(fps) < 1
        return
    states = torch.arange(plan.actual_steps, dtype=torch.float32)[:, None, None].expand(-1, 5, 384)
    windows = AudioWindows(states, plan)
    assert windows.batch(slice(0, len(windows))).shape == (plan.num_frames, 50, 384)
    assert plan.starts[-1] + 10 <= plan.pad_left + plan.actual_steps + plan.pad_right


@pytest.mark.parametrize("fps", [0.5, 50, 60, 120])
def test_frame_rates_the_official_cannot_window_are_bad_options(fps: float) -> None:
    with pytest.raises(BackendError) as caught:
        plan_windows(32_000, fps)
    assert caught.value.code == "bad_option"


def test_speech_shorter_than_a_frame_is_too_short() -> None:
    with pytest.raises(BackendError) as caught:
        plan_windows(600, 25)  # 37.5 ms: not one 40 ms frame
    assert caught.value.code == "audio_too_short"
