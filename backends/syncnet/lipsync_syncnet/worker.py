"""Entry point of the SyncNet worker: ``python -m lipsync_syncnet.worker [--device auto]``."""

from __future__ import annotations

import sys

from lipsync_kit.worker import serve

from .backend import SyncNetBackend


def main() -> int:
    return serve(SyncNetBackend)


if __name__ == "__main__":
    sys.exit(main())
