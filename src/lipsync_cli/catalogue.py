"""The model catalogue: which models exist, which backend runs them and which weight files they need."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import ErrorCode, LipsyncError

__all__ = [
    "BACKENDS",
    "CHECKPOINTS",
    "MODELS",
    "SYNCNET_DETECTOR",
    "SYNCNET_FILE",
    "Backend",
    "Model",
    "UnverifiedFile",
    "WeightFile",
    "WeightRole",
    "available_models",
    "get_model",
    "model_weight_files",
    "weight_file",
]


def _hf(repo: str, path: str) -> str:
    """A Hugging Face ``resolve`` URL (the ``blob`` form returns an HTML page, not the file)."""
    return f"https://huggingface.co/{repo}/resolve/main/{path}"


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file, verified by size and sha256; mirrors are tried in order."""

    name: str
    size: int
    sha256: str
    urls: tuple[str, ...]
    description: str
    manual: str = ""  # where people can fetch it by hand (pages that need a browser)
    license: str = ""


@dataclass(frozen=True)
class Backend:
    name: str
    package: str  # importable package inside the backend env; started as ``python -m <package>.worker``


@dataclass(frozen=True)
class WeightRole:
    """One weight file a backend loads, picked from the manifest by the render options.

    ``role`` is its key in the render request's ``weights``; ``option`` names the option that gives a
    user's own file instead (or, for ``checkpoint``, one of the model's `CHECKPOINTS` by name).
    """

    role: str
    option: str
    choices: tuple[str, ...]  # every manifest file this role can use
    pick: Callable[[Mapping[str, Any]], str | None]  # the file for these options; None: unused by them


@dataclass(frozen=True)
class Model:
    name: str
    backend: str
    description: str
    roles: tuple[WeightRole, ...]  # the weight files it loads
    variant: dict[str, Any] = field(default_factory=dict)  # fixed options sent to the backend
    defaults: dict[str, Any] = field(default_factory=dict)  # option defaults that differ from the backend's


_SADTALKER_LICENSE: Final = (
    "SadTalker: Apache-2.0 code, weights MIT on Hugging Face (audio encoders began from Wav2Lip)"
)


def _sadtalker_release(name: str) -> str:
    return f"https://github.com/OpenTalker/SadTalker/releases/download/v0.0.2-rc/{name}"


_WAV2LIP_LICENSE: Final = "Wav2Lip weights: personal/research/non-commercial use only (trained on LRS2)"

WEIGHT_FILES: Final[dict[str, WeightFile]] = {
    f.name: f
    for f in (
        WeightFile(
            name="wav2lip.pth",
            size=435_807_851,
            sha256="b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37",
            urls=(
                _hf("Nekochu/Wav2Lip", "wav2lip.pth"),
                _hf("steinhaug/cache-repository", "Wav2Lip/wav2lip.pth"),
                _hf("Ftfyhh/wav2lip", "wav2lip.pth"),
                _hf("numz/wav2lip_studio", "Wav2lip/wav2lip.pth"),
            ),
            description="Wav2Lip generator (best lip-sync accuracy)",
            manual="https://drive.google.com/drive/folders/153HLrqlBNxzZcHi17PEvP09kkAfzRshM",
            license=_WAV2LIP_LICENSE,
        ),
        WeightFile(
            name="wav2lip_gan.pth",
            size=435_801_865,
            sha256="ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8",
            urls=(
                _hf("Nekochu/Wav2Lip", "wav2lip_gan.pth"),
                _hf("steinhaug/cache-repository", "Wav2Lip/wav2lip_gan.pth"),
                _hf("numz/wav2lip_studio-0.2", "Wav2lip/wav2lip_gan.pth"),
                _hf("Kedreamix/Linly-Talker", "checkpoints/wav2lip_gan.pth"),
            ),
            description="Wav2Lip + GAN generator (sharper mouth, slightly weaker sync)",
            manual="https://drive.google.com/file/d/15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk",
            license=_WAV2LIP_LICENSE,
        ),
        WeightFile(
            name="s3fd-619a316812.pth",
            size=89_843_225,
            sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
            urls=(
                "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
                _hf("camenduru/Wav2Lip", "checkpoints/s3fd-619a316812.pth"),
                _hf("chunyu-li/face-alignment", "s3fd-619a316812.pth"),
                _hf("jbilcke-hf/model-cocktail", "face-detector/s3fd-619a316812.pth"),
            ),
            description="S3FD face detector (from face-alignment)",
        ),
        *(
            WeightFile(
                name=f"SadTalker_V0.0.2_{size}.safetensors",
                size=725_066_984,
                sha256=digest,
                urls=(
                    _sadtalker_release(f"SadTalker_V0.0.2_{size}.safetensors"),
                    _hf("vinthony/SadTalker-V002rc", f"SadTalker_V0.0.2_{size}.safetensors"),
                ),
                description=f"SadTalker networks, {size} px renderer (audio-to-motion, 3DMM, renderer)",
                license=_SADTALKER_LICENSE,
            )
            for size, digest in (
                (256, "c211f5d6de003516bf1bbda9f47049a4c9c99133b1ab565c6961e5af16477bff"),
                (512, "0e063f7ff5258240bdb0f7690783a7b1374e6a4a81ce8fa33456f4cd49694340"),
            )
        ),
        WeightFile(
            name="mapping_00229-model.pth.tar",
            size=155_521_183,
            sha256="62a1e06006cc963220f6477438518ed86e9788226c62ae382ddc42fbcefb83f1",
            urls=(
                _sadtalker_release("mapping_00229-model.pth.tar"),
                _hf("vinthony/SadTalker-V002rc", "mapping_00229-model.pth.tar"),
            ),
            description="SadTalker mapping net (preprocess crop, extcrop, resize)",
            license=_SADTALKER_LICENSE,
        ),
        WeightFile(
            name="mapping_00109-model.pth.tar",
            size=155_779_231,
            sha256="84a8642468a3fcfdd9ab6be955267043116c2bec2284686a5262f1eaf017f64c",
            urls=(
                _sadtalker_release("mapping_00109-model.pth.tar"),
                _hf("vinthony/SadTalker-V002rc", "mapping_00109-model.pth.tar"),
            ),
            description="SadTalker mapping net (preprocess full, extfull)",
            license=_SADTALKER_LICENSE,
        ),
        WeightFile(
            name="GFPGANv1.4.pth",
            size=348_632_874,
            sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            urls=(
                "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
                _hf("gmk123/GFPGAN", "GFPGANv1.4.pth"),
                _hf("hacksider/deep-live-cam", "GFPGANv1.4.pth"),
            ),
            description="GFPGAN v1.4 face restoration (SadTalker --enhancer gfpgan)",
            license="Apache-2.0 (TencentARC GFPGAN, with third-party notices)",
        ),
        WeightFile(
            name="parsing_parsenet.pth",
            size=85_331_193,
            sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            urls=(
                "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
                _hf("gmk123/GFPGAN", "parsing_parsenet.pth"),
                _hf("camenduru/facexlib", "parsing_parsenet.pth"),
            ),
            description="ParseNet face parsing (the paste mask of --enhancer gfpgan, from facexlib)",
            license="MIT (facexlib, face-parsing)",
        ),
        WeightFile(
            name="detection_Resnet50_Final.pth",
            size=109_497_761,
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            urls=(
                "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
                _hf("camenduru/facexlib", "detection_Resnet50_Final.pth"),
                _hf("darkeril/collection", "detection_Resnet50_Final.pth"),
            ),
            description="RetinaFace face detector (ResNet-50, from facexlib)",
            license="MIT (facexlib, RetinaFace)",
        ),
        WeightFile(
            name="alignment_WFLW_4HG.pth",
            size=193_670_248,
            sha256="bbfd137307a4c7debd5c283b9b0ce539466cee417ac0a155e184d857f9f2899c",
            urls=(
                "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",
                _hf("camenduru/SadTalker", "new/gfpgan/weights/alignment_WFLW_4HG.pth"),
            ),
            description="AWing 98-point face landmarks (from facexlib)",
            license="Apache-2.0 (AdaptiveWingLoss)",
        ),
    )
}

BACKENDS: Final[dict[str, Backend]] = {
    b.name: b
    for b in (
        Backend("wav2lip", "lipsync_wav2lip"),
        Backend("sadtalker", "lipsync_sadtalker"),
        Backend("syncnet", "lipsync_syncnet"),  # `lipsync eval`: a metric, not a model of `lipsync run`
    )
}

SYNCNET_LICENSE: Final = (
    "SyncNet weights (syncnet_v2.model, VGG Oxford, trained on BBC television footage): research use only; "
    "syncnet_python's code is MIT"
)


@dataclass(frozen=True)
class UnverifiedFile:
    """A file whose size and sha256 no public source states, so the store cannot verify a download.

    ``lipsync eval`` uses it from the weights folder (reported with the sha256 it has) or as
    ``--checkpoint PATH``; it is never downloaded automatically.
    """

    name: str
    urls: tuple[str, ...]
    description: str
    license: str


SYNCNET_FILE: Final = UnverifiedFile(
    name="syncnet_v2.model",
    urls=(
        "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",  # download_model.sh
        _hf("ByteDance/LatentSync-1.6", "auxiliary/syncnet_v2.model"),
        _hf("lithiumice/syncnet", "syncnet_v2.model"),
    ),
    description="SyncNet v2 (joonson/syncnet_python): LSE-D, LSE-C and the audio-video offset",
    license=SYNCNET_LICENSE,
)
# The face detector of `lipsync eval`: syncnet_python loads its own sfd_face.pth (about 86 MB, layer names
# vgg.N ...), reported to be a re-save of this file; `--detector-checkpoint sfd_face.pth` loads it too.
SYNCNET_DETECTOR: Final = "s3fd-619a316812.pth"


def _single(role: str, option: str, name: str) -> WeightRole:
    return WeightRole(role, option, (name,), lambda _options: name)


_WAV2LIP_ROLES: Final = (
    WeightRole(
        "checkpoint",
        "checkpoint",
        ("wav2lip.pth", "wav2lip_gan.pth"),
        lambda options: f"{options.get('checkpoint') or 'wav2lip'}.pth",
    ),
    # A fixed --box skips face detection, so the detector is neither fetched nor loaded.
    WeightRole(
        "detector",
        "detector_checkpoint",
        ("s3fd-619a316812.pth",),
        lambda options: None if options.get("box") else "s3fd-619a316812.pth",
    ),
)

SADTALKER_FULL_MODES: Final = ("full", "extfull")

_SADTALKER_ROLES: Final = (
    WeightRole(
        "bundle",
        "checkpoint",
        ("SadTalker_V0.0.2_256.safetensors", "SadTalker_V0.0.2_512.safetensors"),
        lambda options: f"SadTalker_V0.0.2_{options.get('size') or 256}.safetensors",
    ),
    WeightRole(
        "mapping",
        "mapping_checkpoint",
        ("mapping_00229-model.pth.tar", "mapping_00109-model.pth.tar"),
        lambda options: (
            "mapping_00109-model.pth.tar"
            if options.get("preprocess") in SADTALKER_FULL_MODES
            else "mapping_00229-model.pth.tar"
        ),
    ),
    # Every preprocess mode runs both: `resize` skips the crop's detection, not the per-crop landmarks.
    _single("detector", "detector_checkpoint", "detection_Resnet50_Final.pth"),
    _single("landmarks", "landmark_checkpoint", "alignment_WFLW_4HG.pth"),
    WeightRole(
        "enhancer",
        "enhancer_checkpoint",
        ("GFPGANv1.4.pth",),
        lambda options: "GFPGANv1.4.pth" if options.get("enhancer") == "gfpgan" else None,
    ),
    WeightRole(
        "parser",
        "parsing_checkpoint",
        ("parsing_parsenet.pth",),
        lambda options: "parsing_parsenet.pth" if options.get("enhancer") == "gfpgan" else None,
    ),
)

MODELS: Final[dict[str, Model]] = {
    m.name: m
    for m in (
        Model(
            name="wav2lip",
            backend="wav2lip",
            description="Wav2Lip (Prajwal et al. 2020): re-draws the mouth of a still image or a video",
            roles=_WAV2LIP_ROLES,
        ),
        Model(
            name="sadtalker",
            backend="sadtalker",
            description="SadTalker (Zhang et al. 2023): talking head with head motion, expressions, blinks",
            roles=_SADTALKER_ROLES,
        ),
        Model(
            name="sadtalker-still",
            backend="sadtalker",
            description="SadTalker keeping the source head pose, pasted back into the full picture",
            roles=_SADTALKER_ROLES,
            variant={"still": True},
            defaults={"preprocess": "full"},
        ),
    )
}

# Named generator checkpoints a model accepts for ``--checkpoint NAME``; the first is the default.
CHECKPOINTS: Final[dict[str, tuple[str, ...]]] = {"wav2lip": ("wav2lip", "wav2lip_gan")}


def available_models() -> list[str]:
    return sorted(MODELS)


def get_model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise LipsyncError(
            ErrorCode.UNKNOWN_MODEL,
            f"unknown model {name!r}",
            hint=f"available models: {', '.join(available_models())}",
        ) from None


def weight_file(name: str) -> WeightFile:
    return WEIGHT_FILES[name]


def model_weight_files(
    model: Model, *, every_checkpoint: bool = True, options: Mapping[str, Any] | None = None
) -> list[WeightFile]:
    """The manifest files a model uses: every file any option could pick, or those its options pick.

    Args:
        every_checkpoint: list every choice of every role (e.g. both renderer sizes).
        options: the render options (default: the model's defaults) when only the picked files count.
    """
    chosen = {**model.defaults, **(options or {}), **model.variant}
    names: list[str] = []
    for role in model.roles:
        for name in role.choices if every_checkpoint else (role.pick(chosen),):
            if name is not None and name not in names:
                names.append(name)
    return [WEIGHT_FILES[name] for name in names]
