"""The end of tests/run: fail if a test other than a CUDA-only one was skipped.

Reads the ``--skip-log`` file that every pytest run of tests/run appended to (see tests/conftest.py). Tests
marked ``cuda`` may skip on a machine without CUDA; any other skip is a hole in the suite and fails the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(log: Path) -> int:
    skips = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    cuda = [skip for skip in skips if skip["cuda"]]
    others = [skip for skip in skips if not skip["cuda"]]
    print(f"skipped: {len(cuda)} CUDA-only test(s), {len(others)} other(s)")
    if others:
        print(f"error: {len(others)} test(s) skipped for a reason other than CUDA:", file=sys.stderr)
        for skip in others:
            print(f"  {skip['test']}: {skip['reason']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
