"""File-name facts the host and every backend share: output containers and partial files.

Standard library only: the host imports it to check ``-o`` and to clean up after a killed worker.
A partial file is the hidden sibling a file is written under before it is renamed into place
(``.out.mp4.partial-1a2b3c4d``); `find_partials` finds what a killed process left behind.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "CONTAINER_BY_SUFFIX",
    "PARTIAL_MARK",
    "Container",
    "container_for",
    "find_partials",
    "partial_path",
]

Container = Literal["mp4", "mkv"]

# The video containers an output name can ask for. ``.m4v`` and ``.mov`` are written as MP4: the
# ISO base media format QuickTime also reads, with the same H.264 + AAC streams.
CONTAINER_BY_SUFFIX: Final[dict[str, Container]] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mp4",
    ".mkv": "mkv",
}
PARTIAL_MARK: Final = ".partial"


def container_for(path: Path) -> Container | None:
    """The container a video file name asks for, or None for an extension that names none."""
    return CONTAINER_BY_SUFFIX.get(path.suffix.lower())


def partial_path(dest: Path, token: str | None = None) -> Path:
    """The hidden name ``dest`` is written under until it is complete: ``.NAME.partial[-TOKEN]``.

    Args:
        dest: the final path (a file, or a folder of PNG frames).
        token: tells concurrent writers apart; None gives the one fixed name a resumable download
            keeps across runs.
    """
    return dest.with_name(f".{dest.name}{PARTIAL_MARK}" + (f"-{token}" if token else ""))


def find_partials(dest: Path) -> list[Path]:
    """Every partial of ``dest`` in its folder (any token), e.g. what a killed writer left behind."""
    fixed = partial_path(dest).name
    found = dest.parent.glob(glob.escape(fixed) + "*")
    return sorted(p for p in found if p.name == fixed or p.name.startswith(fixed + "-"))
