"""Entry point of the MuseTalk worker: ``python -m lipsync_musetalk.worker [--device auto]``."""

from __future__ import annotations

import sys

from lipsync_kit.worker import serve

from .backend import MuseTalkBackend


def main() -> int:
    return serve(MuseTalkBackend)


if __name__ == "__main__":
    sys.exit(main())
