"""The model catalogue: which models exist, which backend runs them and which weight files they need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from .errors import ErrorCode, LipsyncError

__all__ = [
    "BACKENDS",
    "CHECKPOINTS",
    "MODELS",
    "Backend",
    "Model",
    "WeightFile",
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
class Model:
    name: str
    backend: str
    description: str
    weights: tuple[str, ...]  # weight files always needed
    variant: dict[str, Any] = field(default_factory=dict)  # fixed options sent to the backend


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
    )
}

BACKENDS: Final[dict[str, Backend]] = {b.name: b for b in (Backend("wav2lip", "lipsync_wav2lip"),)}

MODELS: Final[dict[str, Model]] = {
    m.name: m
    for m in (
        Model(
            name="wav2lip",
            backend="wav2lip",
            description="Wav2Lip (Prajwal et al. 2020): re-draws the mouth of a still image or a video",
            weights=("s3fd-619a316812.pth",),
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


def model_weight_files(model: Model, *, every_checkpoint: bool = True) -> list[WeightFile]:
    """The manifest files a model can use: its named checkpoints (or only the default) and the rest."""
    named = CHECKPOINTS.get(model.name, ())
    checkpoints = named if every_checkpoint else named[:1]
    return [WEIGHT_FILES[f"{name}.pth"] for name in checkpoints] + [WEIGHT_FILES[n] for n in model.weights]
