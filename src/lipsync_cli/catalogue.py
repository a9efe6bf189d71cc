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


def _hf_at(repo: str, revision: str, path: str) -> str:
    """A Hugging Face URL pinned to a commit: still the same bytes after the repository's main moves on."""
    return f"https://huggingface.co/{repo}/resolve/{revision}/{path}"


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

_MUSETALK_LICENSE: Final = (
    "MuseTalk 1.5: MIT code; the README allows any use of the weights, even commercial (the Hugging Face"
    " card is tagged creativeml-openrail-m)"
)
# Commits of the Hugging Face repositories whose files carry these sizes and sha256 (research/musetalk.md §5).
_MUSETALK_REV: Final = "3ef28bc5cff08c90ad8178a25f1b570cd800170f"
_SD_VAE_REV: Final = "31f26fdeee1355a5c34592e401dd41e45d25a493"
_WHISPER_TINY_REV: Final = "169d4a4341b33bc18d8881c4b69c2e104e1cc0af"
_DWPOSE_REV: Final = "1a7144101628d69ee7a3768d1ee3a094070dc388"
_BISENET_REV: Final = "0073b233a5a3c4b1377d4dbf49245017938a72b5"


def _hf_pair(repo: str, revision: str, path: str) -> tuple[str, str]:
    """The file on main, then at the commit it was verified at."""
    return _hf(repo, path), _hf_at(repo, revision, path)


MUSETALK_FILES: Final = (
    WeightFile(
        name="musetalkV15_unet.pth",
        size=3_400_074_924,
        sha256="7ebf6c98c181e20838e4c0054e96e944ac60d5d692cc01db42839fe11b787007",
        urls=_hf_pair("TMElyralab/MuseTalk", _MUSETALK_REV, "musetalkV15/unet.pth"),
        description="MuseTalk 1.5 UNet (single-step latent mouth inpainting)",
        license=_MUSETALK_LICENSE,
    ),
    WeightFile(
        name="musetalkV15_musetalk.json",
        size=748,
        sha256="5b6923aee04d71692e0e9846c471e0a4ea07a4f686d39545e472bd4ba17e1b47",
        urls=_hf_pair("TMElyralab/MuseTalk", _MUSETALK_REV, "musetalkV15/musetalk.json"),
        description="MuseTalk 1.5 UNet config",
        license=_MUSETALK_LICENSE,
    ),
    WeightFile(
        name="sd-vae-ft-mse.safetensors",
        size=334_643_276,
        sha256="a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815",
        urls=_hf_pair("stabilityai/sd-vae-ft-mse", _SD_VAE_REV, "diffusion_pytorch_model.safetensors"),
        description="Stable Diffusion VAE ft-MSE (MuseTalk's latent space)",
        license="MIT (stabilityai/sd-vae-ft-mse)",
    ),
    WeightFile(
        name="sd-vae-ft-mse_config.json",
        size=547,
        sha256="92d3dfb746fca211a2c9e019e285f8597412211728dce3c5bcf4eda0f2d62e7e",
        urls=_hf_pair("stabilityai/sd-vae-ft-mse", _SD_VAE_REV, "config.json"),
        description="Stable Diffusion VAE ft-MSE config",
        license="MIT (stabilityai/sd-vae-ft-mse)",
    ),
    WeightFile(
        name="whisper-tiny.safetensors",
        size=151_061_672,
        sha256="7ebd0e69e78190ffe1438491fa05cc1f5c1aa3a4c4db3bc1723adbb551ea2395",
        urls=_hf_pair("openai/whisper-tiny", _WHISPER_TINY_REV, "model.safetensors"),
        description="Whisper tiny (MuseTalk's speech encoder; only the encoder runs)",
        license="MIT (openai/whisper)",
    ),
    WeightFile(
        name="whisper-tiny_config.json",
        size=1_983,
        sha256="ffdccec4f3211f4c63310f2b7098f309fe70f3952cedc5e4d11e43f5b2379b98",
        urls=_hf_pair("openai/whisper-tiny", _WHISPER_TINY_REV, "config.json"),
        description="Whisper tiny config",
        license="MIT (openai/whisper)",
    ),
    WeightFile(
        name="whisper-tiny_preprocessor_config.json",
        size=184_990,
        sha256="9b5cd03a36fbb8a627c64d98a5b5b126ead95a77720723944487311f0110b666",
        urls=_hf_pair("openai/whisper-tiny", _WHISPER_TINY_REV, "preprocessor_config.json"),
        description="Whisper tiny log-mel settings",
        license="MIT (openai/whisper)",
    ),
    WeightFile(
        name="dw-ll_ucoco_384.pth",
        size=406_878_486,
        sha256="0d9408b13cd863c4e95a149dd31232f88f2a12aa6cf8964ed74d7d97748c7a07",
        urls=_hf_pair("yzd-v/DWPose", _DWPOSE_REV, "dw-ll_ucoco_384.pth"),
        description="DWPose whole-body landmarks (RTMPose-l; MuseTalk's face box)",
        license="Apache-2.0 (DWPose)",
    ),
    WeightFile(
        name="79999_iter.pth",
        size=53_289_463,
        sha256="468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
        urls=(
            *_hf_pair("ManyOtherFunctions/face-parse-bisent", _BISENET_REV, "79999_iter.pth"),
            # facexlib publishes the same file as parsing_bisenet.pth (same size and sha256 on its HF copies).
            "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
        ),
        description="BiSeNet face parsing (MuseTalk's blending mask; facexlib's parsing_bisenet.pth)",
        manual="https://drive.google.com/file/d/154JgKpzCPW82qINcVieuPH3fZ2e0P812",
        license="MIT (face-parsing.PyTorch)",
    ),
)

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
        *MUSETALK_FILES,
    )
}

BACKENDS: Final[dict[str, Backend]] = {
    b.name: b
    for b in (
        Backend("wav2lip", "lipsync_wav2lip"),
        Backend("sadtalker", "lipsync_sadtalker"),
        Backend("musetalk", "lipsync_musetalk"),
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

# role in the render request -> (option naming your own file, manifest file); every role is always used.
_MUSETALK_ROLES: Final = tuple(
    _single(role, option, name)
    for role, option, name in (
        ("unet", "checkpoint", "musetalkV15_unet.pth"),
        ("unet_config", "unet_config", "musetalkV15_musetalk.json"),
        ("vae", "vae_checkpoint", "sd-vae-ft-mse.safetensors"),
        ("vae_config", "vae_config", "sd-vae-ft-mse_config.json"),
        ("whisper", "whisper_checkpoint", "whisper-tiny.safetensors"),
        ("whisper_config", "whisper_config", "whisper-tiny_config.json"),
        ("whisper_preprocessor", "whisper_preprocessor", "whisper-tiny_preprocessor_config.json"),
        ("pose", "pose_checkpoint", "dw-ll_ucoco_384.pth"),
        ("parser", "parsing_checkpoint", "79999_iter.pth"),
        ("detector", "detector_checkpoint", "s3fd-619a316812.pth"),
    )
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
        Model(
            name="musetalk",
            backend="musetalk",
            description="MuseTalk 1.5 (Tencent 2025): re-draws the lower face at 256 px in one UNet step",
            roles=_MUSETALK_ROLES,
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
