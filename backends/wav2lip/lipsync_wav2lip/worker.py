"""Entry point of the Wav2Lip worker: ``python -m lipsync_wav2lip.worker [--device auto]``."""

from __future__ import annotations

import sys

from lipsync_kit.worker import serve

from .backend import Wav2LipBackend


def main() -> int:
    return serve(Wav2LipBackend)


if __name__ == "__main__":
    sys.exit(main())
