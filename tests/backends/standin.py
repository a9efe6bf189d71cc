"""Stand-in weights and golden files for backend tests (numpy + torch; no pytest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from standin_weights import make_state_dict

__all__ = ["load_golden", "load_schema", "standin_state_dict"]


def load_schema(path: Path) -> dict[str, tuple[int, ...]]:
    """An official ``schema_*.json``: ordered ``[key, shape(, dtype)]`` entries.

    Wav2Lip's schemas are a bare list; SadTalker's wrap it in an object under ``state_dict``.
    """
    document = json.loads(path.read_text())
    entries = document["state_dict"] if isinstance(document, dict) else document
    return {entry[0]: tuple(entry[1]) for entry in entries}


def standin_state_dict(schema: Path) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights under the official key names (see standin_weights.py)."""
    return {k: torch.from_numpy(v) for k, v in make_state_dict(load_schema(schema)).items()}


def load_golden(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
