"""The render options of the SyncNet backend: none. It renders nothing; ``lipsync eval`` has its own flags."""

from __future__ import annotations

from typing import Final

from lipsync_kit.options import Option

__all__ = ["OPTIONS"]

OPTIONS: Final[tuple[Option, ...]] = ()
