"""The options of the SadTalker backend (sadtalker, sadtalker-still): the host builds its flags and checks
from this table."""

from __future__ import annotations

from typing import Final

from lipsync_kit.options import Option

__all__ = ["OPTIONS"]

_DEGREES = "DEGREES"

OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "checkpoint",
        "path",
        None,
        "Your own bundle, with the keys of SadTalker_V0.0.2_256.safetensors.",
        nullable=True,
        target="request",
        default_note="the official bundle of --size",
    ),
    Option(
        "mapping_checkpoint",
        "path",
        None,
        "Your own mapping net (mapping_*.pth.tar).",
        nullable=True,
        target="request",
    ),
    Option(
        "detector_checkpoint",
        "path",
        None,
        "Your own RetinaFace face-detector weights.",
        nullable=True,
        target="request",
    ),
    Option(
        "landmark_checkpoint",
        "path",
        None,
        "Your own AWing landmark weights (alignment_WFLW_4HG.pth).",
        nullable=True,
        target="request",
    ),
    Option(
        "enhancer_checkpoint",
        "path",
        None,
        "Your own --enhancer gfpgan weights (GFPGANv1.4.pth).",
        nullable=True,
        target="request",
    ),
    Option(
        "parsing_checkpoint",
        "path",
        None,
        "Your own face-parsing net of the enhancer (parsing_parsenet.pth).",
        nullable=True,
        target="request",
    ),
    Option(
        "preprocess",
        "choice",
        "crop",
        "crop: the face square; extcrop: with a margin; resize: the whole picture squashed; full/extfull: "
        "crop, animate, then paste back into the full picture.",
        choices=("crop", "extcrop", "resize", "full", "extfull"),
    ),
    Option(
        "size",
        "int",
        256,
        "Renderer resolution (picks SadTalker_V0.0.2_<size>.safetensors).",
        choices=(256, 512),
    ),
    Option("pose_style", "int", 0, "Head-motion style.", minimum=0, maximum=45),
    Option("expression_scale", "float", 1.0, "Strength of the expressions.", minimum=0),
    Option(
        "batch_size",
        "int",
        None,
        "Frames per renderer call.",
        minimum=1,
        nullable=True,
        default_note="2 on CPU, 16 on CUDA",
    ),
    Option(
        "ref_eyeblink",
        "path",
        None,
        "A video whose eye blinks (expressions) to copy.",
        nullable=True,
        metavar="VIDEO",
    ),
    Option("ref_pose", "path", None, "A video whose head motion to add.", nullable=True, metavar="VIDEO"),
    Option(
        "input_yaw",
        "floats",
        None,
        "Head yaw key angles, e.g. 0,20,-10 (ramps between them).",
        nullable=True,
        metavar=_DEGREES,
    ),
    Option("input_pitch", "floats", None, "Head pitch key angles.", nullable=True, metavar=_DEGREES),
    Option("input_roll", "floats", None, "Head roll key angles.", nullable=True, metavar=_DEGREES),
    Option(
        "face_index",
        "int",
        None,
        "Which face when there are several, counted from the left from 0.",
        minimum=0,
        nullable=True,
        default_note="the largest",
    ),
    Option(
        "paste",
        "choice",
        "blend",
        "Full modes: blend feathers the rendered face into the picture; poisson is the official "
        "seamlessClone.",
        choices=("blend", "poisson"),
    ),
    Option(
        "enhancer",
        "choice",
        None,
        "gfpgan: restore the faces of every frame with GFPGAN v1.4 (output 2x larger, slower).",
        choices=("gfpgan",),
        nullable=True,
    ),
)
