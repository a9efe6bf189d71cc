"""lipsync_kit.checkpoints: safe loading, container unwrapping, prefix stripping and strict loading."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from lipsync_kit.checkpoints import load_into, load_state_dict_file
from lipsync_kit.errors import BackendError, ErrorCode
from torch import nn


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.norm = nn.BatchNorm2d(2)


class _OpensAFile:
    """Unpickling this object (unsafely) would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return dict(_Tiny().state_dict())


def _assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)


def test_bare_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    torch.save(_weights(), path)
    _assert_same(load_state_dict_file(path), _weights())


@pytest.mark.parametrize("container", ["state_dict", "model"])
def test_training_container_with_dataparallel_prefix(tmp_path: Path, container: str) -> None:
    path = tmp_path / "wrapped.pth"
    prefixed = {"module." + k: v for k, v in _weights().items()}
    torch.save({container: prefixed, "optimizer": None, "global_step": 7, "global_epoch": 1}, path)

    state = load_state_dict_file(path)

    _assert_same(state, _weights())
    load_into(_Tiny(), state, source=str(path))


def test_named_section_of_a_training_container(tmp_path: Path) -> None:
    """SadTalker's mapping_*.pth.tar: {'mapping', 'discriminator', 'optimizer_mapping', ..., 'epoch'}."""
    path = tmp_path / "mapping.pth.tar"
    adam = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999)}]}
    torch.save({"mapping": _weights(), "discriminator": {}, "optimizer_mapping": adam, "epoch": 229}, path)

    _assert_same(load_state_dict_file(path, section="mapping"), _weights())
    with pytest.raises(BackendError) as info:
        load_state_dict_file(path, section="generator")
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert "'generator'" in info.value.message


def test_prefix_is_stripped_only_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "inner.pth"
    torch.save({"module.block.module.weight": torch.ones(2), "head.module.bias": torch.zeros(3)}, path)

    assert sorted(load_state_dict_file(path)) == ["block.module.weight", "head.module.bias"]


def test_pickled_python_object_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "was-executed"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _weights(), "extra": _OpensAFile(marker)}, path)

    with pytest.raises(BackendError) as info:
        load_state_dict_file(path)

    assert info.value.code == ErrorCode.BAD_CHECKPOINT == "bad_checkpoint"
    assert "refused" in info.value.message and "open" in info.value.message
    assert "weights_only=False" not in info.value.message
    assert not marker.exists()


def test_training_checkpoint_reads_objects_beside_the_weights_inert(tmp_path: Path) -> None:
    """mmengine-style files (numpy arrays in meta, Python objects elsewhere): refused by default; with
    ``training_checkpoint=True`` every such object is an inert placeholder and nothing in the file runs."""
    marker = tmp_path / "was-executed"
    path = tmp_path / "train.pth"
    extras = {"meta": {"sigmas": np.linspace(0.0, 1.0, 5)}, "extra": _OpensAFile(marker)}
    torch.save({"state_dict": _weights(), **extras}, path)

    with pytest.raises(BackendError) as info:
        load_state_dict_file(path)
    assert info.value.code == ErrorCode.BAD_CHECKPOINT

    _assert_same(load_state_dict_file(path, training_checkpoint=True), _weights())
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.pth", b"this is not a checkpoint\n"), ("empty.pth", b"")],
    ids=["text", "empty"],
)
def test_unreadable_file_is_bad_checkpoint(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BackendError) as info:
        load_state_dict_file(path)
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert str(path) in info.value.message


def test_truncated_download_is_bad_checkpoint(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pth"
    torch.save(_weights(), whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BackendError) as info:
        load_state_dict_file(cut)
    assert info.value.code == ErrorCode.BAD_CHECKPOINT


def test_container_without_tensors_is_bad_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"global_step": 3, "note": "no weights here"}, path)
    with pytest.raises(BackendError) as info:
        load_state_dict_file(path)
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert "'global_step'" in info.value.message


def test_missing_file_is_weights_missing(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as info:
        load_state_dict_file(tmp_path / "absent.pth")
    assert info.value.code == ErrorCode.WEIGHTS_MISSING


def test_key_mismatch_names_missing_and_unexpected_keys() -> None:
    state = _weights()
    del state["norm.running_var"]
    state["classifier.weight"] = torch.zeros(1)

    with pytest.raises(BackendError) as info:
        load_into(_Tiny(), state, source="/weights/other.pth")

    message = info.value.message
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert "/weights/other.pth" in message
    assert "1 missing keys: norm.running_var" in message
    assert "1 unexpected keys: classifier.weight" in message


def test_shape_mismatch_names_the_key() -> None:
    state = _weights()
    state["conv.weight"] = torch.zeros(4, 1, 3, 3)
    with pytest.raises(BackendError) as info:
        load_into(_Tiny(), state, source="x.pth")
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert "conv.weight (file (4, 1, 3, 3), model (2, 1, 3, 3))" in info.value.message


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """The safetensors layout by hand (u64 header size, JSON header, raw little-endian data), no package."""
    header: dict[str, object] = {}
    blobs: list[bytes] = []
    offset = 0
    for key, value in tensors.items():
        blob = value.contiguous().numpy().astype(value.numpy().dtype.newbyteorder("<")).tobytes()
        entry = {"dtype": _SAFETENSORS_DTYPES[value.dtype], "shape": list(value.shape)}
        header[key] = {**entry, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_safetensors_file(tmp_path: Path) -> None:
    """Read with the safetensors package where the env has it (sadtalker); elsewhere a clear error."""
    path = tmp_path / "weights.safetensors"
    _write_safetensors(path, {"module." + k: v for k, v in _weights().items()})
    if importlib.util.find_spec("safetensors") is not None:
        _assert_same(load_state_dict_file(path), _weights())
        return
    with pytest.raises(BackendError) as info:  # the wav2lip env has no safetensors package
        load_state_dict_file(path)
    assert info.value.code == ErrorCode.BAD_CHECKPOINT
    assert "needs the safetensors package" in info.value.message and info.value.hint
