"""Entry point of the SadTalker worker: ``python -m lipsync_sadtalker.worker [--device auto]``."""

from __future__ import annotations

import sys

from lipsync_kit.worker import serve

from .backend import SadTalkerBackend


def main() -> int:
    return serve(SadTalkerBackend)


if __name__ == "__main__":
    sys.exit(main())
