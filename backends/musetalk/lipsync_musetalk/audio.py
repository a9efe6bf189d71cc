"""Speech features of MuseTalk 1.5: Whisper-tiny encoder states, stacked, and one window per video frame.

Matches ``musetalk/utils/audio_processor.py`` (``get_audio_feature`` + ``get_whisper_chunk``) of
TMElyralab/MuseTalk: the speech is cut into 30 s segments, each becomes an (80, 3000) log-mel with the
stock ``WhisperFeatureExtractor`` and runs through the stock ``WhisperModel`` encoder; all five hidden
states (the embedding output and the output of each of the four layers, the last one layer-normed) are
stacked per encoder step (50 steps per second). Frame ``i`` then reads 10 consecutive steps of a zero-padded
copy (2 steps of context either side, widened by ``ceil(50 / fps)``) and flattens them to 50 tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from lipsync_kit.errors import BackendError
from lipsync_kit.protocol import ErrorCode
from transformers import WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

__all__ = [
    "SAMPLE_RATE",
    "AudioWindows",
    "WindowPlan",
    "encode_speech",
    "min_speech_samples",
    "plan_windows",
    "speech_features",
    "window_fps",
]

SAMPLE_RATE: Final = 16_000
SEGMENT_SECONDS: Final = 30  # Whisper's fixed input length
SEGMENT_SAMPLES: Final = SAMPLE_RATE * SEGMENT_SECONDS  # 480,000
STEPS_PER_SECOND: Final = 50  # encoder steps: 3000 mel frames / 2 (stride-2 conv) / 30 s
PAD_LEFT: Final = 2  # the official audio_padding_length_left
PAD_RIGHT: Final = 2  # the official audio_padding_length_right
WINDOW_STEPS: Final = 2 * (PAD_LEFT + PAD_RIGHT + 1)  # 10 encoder steps per video frame
HIDDEN_STATES: Final = 5  # whisper-tiny: embeddings + 4 layers
FEATURE_DIM: Final = 384  # whisper-tiny d_model
TOKENS_PER_FRAME: Final = WINDOW_STEPS * HIDDEN_STATES  # 50 cross-attention tokens per frame
MAX_FPS: Final = STEPS_PER_SECOND  # from 50 fps up the official last window runs past the padding


@dataclass(frozen=True)
class WindowPlan:
    """Where each video frame's window starts in the padded encoder steps (the official index rule).

    The official code truncates the frame rate with ``int()`` first (29.97 windows as 29, 12.5 as 12), and
    counts frames as ``floor(seconds * int(fps))``.
    """

    int_fps: int
    actual_steps: int  # encoder steps kept: floor(seconds * 50)
    pad_left: int  # zero steps in front
    pad_right: int  # zero steps behind
    starts: np.ndarray  # (num_frames,) int64, window start in the padded steps

    @property
    def num_frames(self) -> int:
        return len(self.starts)


def window_fps(fps: float) -> int:
    """The frame rate the official rule windows at: ``int(fps)`` (29.97 windows as 29, 12.5 as 12).

    Raises:
        BackendError: ``bad_option`` under 1 fps, and at 50 fps and more, where the official code's last
            window runs past the padding and it exits.
    """
    int_fps = int(fps)
    if int_fps < 1 or int_fps >= MAX_FPS:
        raise BackendError(
            ErrorCode.BAD_OPTION,
            f"MuseTalk cannot window speech at {fps:g} fps: its audio windows work from 1 up to 49 fps"
            " (the official code stops with an error at 50 fps and above)",
            hint="re-encode the video at 25 fps (MuseTalk's training rate), e.g."
            " ffmpeg -i in.mp4 -r 25 out.mp4, or pass --fps 25 for a still image",
        )
    return int_fps


def min_speech_samples(fps: float) -> int:
    """The fewest 16 kHz samples that make one video frame at ``fps`` (640 at 25 fps)."""
    return math.ceil(SAMPLE_RATE / window_fps(fps))


def plan_windows(num_samples: int, fps: float) -> WindowPlan:
    """The official window rule for ``num_samples`` of 16 kHz speech at ``fps``.

    Raises:
        BackendError: ``bad_option`` for a frame rate the rule cannot window (`window_fps`);
            ``audio_too_short`` when the speech is shorter than one frame.
    """
    int_fps = window_fps(fps)
    seconds = num_samples / SAMPLE_RATE
    num_frames = math.floor(seconds * int_fps)
    if num_frames < 1:
        raise BackendError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"the speech lasts {seconds:.3f} s, shorter than one video frame at {int_fps} fps",
            hint="give at least a fraction of a second of speech",
        )
    widen = math.ceil(STEPS_PER_SECOND / int_fps)
    steps_per_frame = STEPS_PER_SECOND / int_fps
    starts = np.array([int(i * steps_per_frame) for i in range(num_frames)], dtype=np.int64)
    # Below 50 fps the padding (at least 4 steps in front, 12 behind) always holds the last window.
    return WindowPlan(
        int_fps=int_fps,
        actual_steps=math.floor(seconds * STEPS_PER_SECOND),
        pad_left=widen * PAD_LEFT,
        pad_right=widen * PAD_RIGHT * 3,  # the official right pad is three times the left one
        starts=starts,
    )


def speech_features(samples: np.ndarray, extractor: WhisperFeatureExtractor) -> list[torch.Tensor]:
    """(1, 80, 3000) float32 log-mel per started 30 s segment of (N,) float32 16 kHz samples."""
    return [
        extractor(
            samples[start : start + SEGMENT_SAMPLES], return_tensors="pt", sampling_rate=SAMPLE_RATE
        ).input_features
        for start in range(0, len(samples), SEGMENT_SAMPLES)
    ]


def encode_speech(features: list[torch.Tensor], encoder: WhisperEncoder, num_samples: int) -> torch.Tensor:
    """Stacked hidden states of every encoder step the speech covers.

    Returns:
        (floor(seconds * 50), 5, 384) on the encoder's device and dtype: per step, the embedding output
        and the outputs of the four layers (the last one layer-normed).
    """
    parameter = next(encoder.parameters())
    states = []
    for segment in features:
        segment = segment.to(parameter.device, parameter.dtype)
        hidden = encoder(segment, output_hidden_states=True).hidden_states
        states.append(torch.stack(hidden, dim=2)[0])
    return torch.cat(states, dim=0)[: math.floor(num_samples / SAMPLE_RATE * STEPS_PER_SECOND)]


class AudioWindows:
    """The per-frame audio tokens, gathered batch by batch from the padded encoder steps."""

    def __init__(self, states: torch.Tensor, plan: WindowPlan) -> None:
        """``states`` (steps, 5, 384) from `encode_speech`; ``plan`` from `plan_windows`."""
        if states.shape[0] != plan.actual_steps:
            raise ValueError(f"{states.shape[0]} encoder steps, the plan expects {plan.actual_steps}")
        zeros = states.new_zeros
        self.padded = torch.cat(
            [zeros(plan.pad_left, *states.shape[1:]), states, zeros(plan.pad_right, *states.shape[1:])]
        )
        self.plan = plan
        self._offsets = torch.arange(WINDOW_STEPS, device=states.device)

    def __len__(self) -> int:
        return self.plan.num_frames

    def batch(self, frames: slice | range | np.ndarray) -> torch.Tensor:
        """(B, 50, 384) tokens for the given frame indices: 10 steps x 5 hidden states, step-major."""
        starts = torch.as_tensor(self.plan.starts[frames], device=self.padded.device)
        steps = starts[:, None] + self._offsets[None, :]
        return self.padded[steps].reshape(len(starts), TOKENS_PER_FRAME, FEATURE_DIM)
