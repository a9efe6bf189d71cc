"""The one place that knows where backends, environments, weights and logs live.

Environment overrides: ``LIPSYNC_HOME`` (weights, logs, and envs when installed), ``LIPSYNC_ENVS``
(the envs folder), ``LIPSYNC_BACKENDS`` (backend sources).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["backends_dir", "cache_dir", "checkout_root", "envs_dir", "home", "logs_dir", "weights_dir"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout, else None."""
    root = _PACKAGE_DIR.parents[1]
    if (root / "backends" / "common").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


def home() -> Path:
    """``$LIPSYNC_HOME``, else ``$XDG_DATA_HOME/lipsync`` (``~/.local/share/lipsync``)."""
    if value := os.environ.get("LIPSYNC_HOME"):
        return Path(value).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser().resolve() / "lipsync"


def backends_dir() -> Path:
    """Backend sources: ``backends/`` of a checkout, or the copy shipped inside the wheel."""
    if value := os.environ.get("LIPSYNC_BACKENDS"):
        return Path(value).expanduser().resolve()
    root = checkout_root()
    return root / "backends" if root else _PACKAGE_DIR / "_backends"


def envs_dir() -> Path:
    """Backend virtualenvs: ``envs/`` of a checkout, else ``$LIPSYNC_HOME/envs``."""
    if value := os.environ.get("LIPSYNC_ENVS"):
        return Path(value).expanduser().resolve()
    root = checkout_root()
    return root / "envs" if root else home() / "envs"


def weights_dir() -> Path:
    return home() / "weights"


def logs_dir() -> Path:
    return home() / "logs"


def cache_dir() -> Path:
    """What backends may recompute but keep to save time (face detections per video)."""
    return home() / "cache"
