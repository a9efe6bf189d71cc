"""Safe checkpoint loading shared by every backend.

PyTorch files are read with ``torch.load(..., weights_only=True)`` and nothing else: a file that
needs arbitrary Python objects is refused, never retried in unsafe mode. ``.safetensors`` files
are read with the safetensors package when it is installed. Containers written by training scripts
(``{"state_dict": ..., "optimizer": ..., ...}`` or ``{"model": ...}``) are unwrapped, and a leading
``module.`` (left by ``nn.DataParallel``) is stripped from the start of each key only.

A training checkpoint (``training_checkpoint=True``, e.g. an mmengine file with ``meta``, ``message_hub``
and optimizer state beside ``state_dict``) may name Python classes outside the weights, such as numpy
arrays or mmengine's ``HistoryBuffer``: each is read as an inert placeholder that runs nothing, still inside
the ``weights_only`` unpickler, and only the tensors of the weights are used.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import torch
from torch import Tensor, nn

from .errors import BackendError, ErrorCode

try:
    from safetensors.torch import load_file as _load_safetensors
except ImportError:  # optional: only needed for .safetensors checkpoints
    _load_safetensors = None  # type: ignore[assignment]

__all__ = ["CONTAINER_KEYS", "STRIPPED_PREFIXES", "load_into", "load_state_dict_file"]

CONTAINER_KEYS: Final = ("state_dict", "model")  # where training scripts nest the weights
STRIPPED_PREFIXES: Final = ("module.",)  # added by nn.DataParallel / DistributedDataParallel
_UNSAFE_GLOBAL: Final = re.compile(r"Unsupported global: GLOBAL (\S+)")
_LISTED_KEYS: Final = 5  # how many offending keys an error message names
_REASON_CHARS: Final = 200  # at most this much of a loader's own reason goes into a message
_NOT_WEIGHTS_HINT: Final = (
    "pass a checkpoint file of model weights (a state dict saved with torch.save, or .safetensors)"
)

_CORRUPT_HINT: Final = "the file is probably truncated or corrupt; delete it and download or import it again"


def _bad(message: str, hint: str | None = _CORRUPT_HINT) -> BackendError:
    return BackendError(ErrorCode.BAD_CHECKPOINT, message, hint)


def _listed(keys: Iterable[str]) -> str:
    """The first few ``keys`` joined, with a count of the rest."""
    items = list(keys)
    shown = ", ".join(items[:_LISTED_KEYS])
    return shown + (f" and {len(items) - _LISTED_KEYS} more" if len(items) > _LISTED_KEYS else "")


def _reason(err: BaseException) -> str:
    """The first sentence of a loader's error, whole (never cut mid-word), without the advice that follows."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    sentence = re.split(r"(?<=[a-z0-9)])\. ", text, maxsplit=1)[0].rstrip(".")
    if len(sentence) > _REASON_CHARS:
        sentence = sentence[:_REASON_CHARS].rsplit(" ", 1)[0] + " …"
    return sentence


class _PlainUnpickler(pickle.Unpickler):
    """Reads plain data only (lists, dicts, numbers, strings): any class or persistent id is refused, so
    nothing in the file can run."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id")


def _plain_pickle_type(path: Path) -> str | None:
    """The type of a plain (non-PyTorch) pickle's object, e.g. ``list``; None if it is not plain data."""
    if zipfile.is_zipfile(path):
        return None
    try:
        with path.open("rb") as stream:
            obj = _PlainUnpickler(stream).load()
    except Exception:
        return None
    legacy = getattr(torch.serialization, "MAGIC_NUMBER", None)  # the first pickle of a pre-1.6 torch.save
    return None if legacy is not None and obj == legacy else type(obj).__name__


class _Inert:
    """Stands in for a class or function a training checkpoint names outside its weights; runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def _load_with_inert_globals(path: Path) -> object:
    """``torch.load(weights_only=True)`` with every global it would refuse read as an `_Inert` stand-in."""
    names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    stand_ins = [(type(name.rsplit(".", 1)[-1], (_Inert,), {}), name) for name in names]
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location="cpu", weights_only=True)


def _torch_load(path: Path, training_checkpoint: bool = False) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if training_checkpoint and "Weights only load failed" in str(err):
            try:
                return _load_with_inert_globals(path)
            except Exception:
                pass  # report the first failure below
        text = str(err)
        if (kind := _plain_pickle_type(path)) is not None:
            raise _bad(f"{path}: a pickle of {kind}, not a state dict", _NOT_WEIGHTS_HINT) from err
        if "Weights only load failed" in text:
            # Name the offending global but not torch's advice to retry with weights_only=False.
            found = _UNSAFE_GLOBAL.search(text)
            what = f"it references {found.group(1)}" if found else "it holds objects other than tensors"
            raise _bad(
                f"{path}: refused to load: {what}, and unpickling Python objects from a file can run"
                " arbitrary code; only tensors and plain containers are accepted",
                "use the official weights from the catalogue, or re-save this checkpoint as a plain state"
                " dict (or .safetensors) in an environment you trust",
            ) from err
        if "zip archive" in text:  # torch.save writes zip files; a cut-off one has no central directory
            what = f"the file is truncated or damaged ({_reason(err)})"
            raise _bad(f"{path}: not a readable PyTorch checkpoint: {what}.") from err
        raise _bad(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {_reason(err)})."
        ) from err


def _safetensors_load(path: Path) -> object:
    if _load_safetensors is None:
        raise _bad(
            f"{path}: reading .safetensors files needs the safetensors package, which is not installed",
            "install safetensors into this backend's environment",
        )
    try:
        return _load_safetensors(path, device="cpu")
    except Exception as err:
        raise _bad(
            f"{path}: not a readable safetensors file ({type(err).__name__}: {_reason(err)})."
        ) from err


def _unwrap(obj: object) -> object:
    if isinstance(obj, Mapping):
        for key in CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner
    return obj


def _strip_prefix(key: str) -> str:
    for prefix in STRIPPED_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def load_state_dict_file(
    path: str | os.PathLike[str], *, section: str | None = None, training_checkpoint: bool = False
) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` state dict on the CPU.

    Args:
        path: a PyTorch pickle (read with ``weights_only=True``) or a ``.safetensors`` file.
        section: the entry of a training container that holds the wanted network (e.g. ``"mapping"``
            in SadTalker's ``mapping_*.pth.tar``); by default ``state_dict`` or ``model`` when present.
        training_checkpoint: read Python objects outside the weights as inert placeholders (module
            docstring) instead of refusing the file; the weights themselves must still be plain tensors.

    Raises:
        BackendError: ``weights_missing`` if there is no such file; ``bad_checkpoint`` if it cannot
            be read, needs unsafe unpickling, or holds anything but a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise BackendError(
            ErrorCode.WEIGHTS_MISSING, f"{path}: no such checkpoint file", "download or import the weights"
        )
    raw = _safetensors_load(path) if path.suffix == ".safetensors" else _torch_load(path, training_checkpoint)
    if section is not None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get(section), Mapping):
            raise _bad(f"{path}: has no {section!r} entry", "check that this is the right file for this role")
        state: object = raw[section]
    else:
        state = _unwrap(raw)
    if not isinstance(state, Mapping) or not state:
        found = "an empty dict" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise _bad(f"{path}: holds {found}, not a state dict", _NOT_WEIGHTS_HINT)
    stray = [repr(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if stray:
        raise _bad(
            f"{path}: not a state dict: {len(stray)} entries are not named tensors ({_listed(stray)})",
            "pass a checkpoint file of model weights",
        )
    cleaned: dict[str, Tensor] = {}
    for key, value in state.items():
        name = _strip_prefix(key)
        if name in cleaned:
            raise _bad(f"{path}: key {name!r} appears both with and without a prefix", None)
        cleaned[name] = value
    return cleaned


def load_into(
    model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str, assign: bool = False
) -> None:
    """Load ``state_dict`` into ``model`` with ``strict=True``.

    Args:
        model: the network to fill in place.
        state_dict: weights, e.g. from `load_state_dict_file`.
        source: where the weights came from (a path), named in error messages.
        assign: adopt the given tensors instead of copying into the model's own (for a model built on
            the ``meta`` device, which has no storage to copy into).

    Raises:
        BackendError: ``bad_checkpoint`` naming the first missing, unexpected and mis-shaped keys.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = [
        f"{len(keys)} {what}: {_listed(keys)}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys with another shape", mis_shaped),
        )
        if keys
    ]
    if not problems:
        try:
            model.load_state_dict(state_dict, strict=True, assign=assign)
            return
        except RuntimeError as err:  # e.g. a dtype that cannot be copied into the parameter
            problems = [str(err)]
    raise _bad(
        f"{source}: not a checkpoint of {type(model).__name__}; " + "; ".join(problems),
        "check that this file holds the weights of the selected model; if it does, it may be damaged:"
        " download or import it again",
    )
