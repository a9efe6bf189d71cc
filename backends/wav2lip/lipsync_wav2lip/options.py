"""The options of the Wav2Lip backend: the host builds its flags and checks from this table."""

from __future__ import annotations

from typing import Final

from lipsync_kit.options import Option, video_options

__all__ = ["OPTIONS"]

OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "checkpoint",
        "checkpoint",
        None,
        "Generator weights: wav2lip, wav2lip_gan, or the path of your own checkpoint in the official format.",
        nullable=True,
        target="request",
        default_note="wav2lip",
    ),
    Option(
        "detector_checkpoint",
        "path",
        None,
        "Your own S3FD face-detector weights.",
        nullable=True,
        target="request",
    ),
    Option(
        "pads",
        "quad",
        (0, 10, 0, 0),
        "Padding around the detected face.",
        minimum=0,
        metavar="TOP BOTTOM LEFT RIGHT",
    ),
    Option(
        "box", "box", None, "Fixed face box; skips detection.", nullable=True, metavar="TOP BOTTOM LEFT RIGHT"
    ),
    Option("nosmooth", "bool", False, "Do not smooth the face boxes over 5 frames (fast head motion)."),
    Option("resize_factor", "int", 1, "Downscale video frames by this factor first.", minimum=1),
    Option(
        "crop",
        "quad",
        (0, -1, 0, -1),
        "Crop video frames first (-1: to the edge).",
        metavar="TOP BOTTOM LEFT RIGHT",
    ),
    Option("rotate", "bool", False, "Rotate video frames 90° clockwise first."),
    Option("batch_size", "int", 128, "Frames per generator call.", minimum=1),
    Option(
        "face_det_batch_size",
        "int",
        16,
        "Face-detector batch size (halved on CUDA out-of-memory).",
        minimum=1,
    ),
    Option(
        "paste",
        "choice",
        "blend",
        "exact: the official hard box; blend: a feathered lower-face blend with no visible edge.",
        choices=("blend", "exact"),
    ),
    *video_options(default_duration_mode="loop"),  # official Wav2Lip loops a video shorter than the speech
)
