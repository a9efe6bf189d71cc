"""Face detections cached per video content, so re-rendering a video with other speech skips detection.

Entries live under the cache folder the host sends (``$LIPSYNC_HOME/cache/detections``), one ``.npz``
per key. The key hashes the video's bytes and every setting that changes the boxes (detector weights,
frame preparation, detection scale, frame rate), so a changed file or option is a different entry.
Entries are written atomically; an unreadable one counts as absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from .face_track import Detections

__all__ = ["DetectionCache", "file_digest"]

CACHE_VERSION: Final = 1  # bump when the meaning of stored records changes
_READ_BLOCK: Final = 1024 * 1024


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class DetectionCache:
    """Detections by key in one folder; a None folder caches nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @staticmethod
    def key(video: Path, settings: Mapping[str, Any]) -> str:
        """The entry name for a video's content and the detection settings (JSON-able values)."""
        body = json.dumps({"v": CACHE_VERSION, "video": file_digest(video), **settings}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.npz"

    def load(self, key: str, frames: int) -> Detections | None:
        """The first ``frames`` records of an entry, or None when absent, unreadable or too short."""
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = Detections(
                    boxes=data["boxes"],
                    found=data["found"],
                    cuts=data["cuts"],
                    complete=bool(data["complete"]),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        if len(stored) < frames and not stored.complete:
            return None
        return stored.head(frames)

    def save(self, key: str, detections: Detections) -> None:
        """Store an entry atomically; a cache that cannot be written is skipped silently."""
        path = self._path(key)
        if path is None:
            return
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as stream:
                np.savez(
                    stream,
                    boxes=detections.boxes,
                    found=detections.found,
                    cuts=detections.cuts,
                    complete=np.array(detections.complete),
                )
            os.replace(temp, path)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()
