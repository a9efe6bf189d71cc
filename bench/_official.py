"""Run an official repository's ``inference.py`` from a checkout: compatibility patches and the call.

The benches never re-create the official flow: they run the real code. The only changes they make to a
checkout are the compatibility patches each bench lists (old-library calls that current NumPy, librosa or
torchvision reject), each an exact text replacement with its reason, applied idempotently.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lipsync_kit.probe import ffmpeg_exe


@dataclass(frozen=True)
class Patch:
    """Replace ``old`` by ``new`` in ``file`` (relative to the checkout), for ``reason``."""

    file: str
    old: str
    new: str
    reason: str

    def apply(self, checkout: Path) -> str:
        """Patch the file unless already done; return ``applied`` or ``already applied``."""
        path = checkout / self.file
        if not path.is_file():
            sys.exit(f"{path} is missing: is {checkout} a checkout of the official repository?")
        text = path.read_text()
        if self.old in text:
            path.write_text(text.replace(self.old, self.new))
            return "applied"
        if self.new in text:
            return "already applied"
        sys.exit(f"{path} has neither the original nor the patched text of: {self.reason}")


def apply_patches(checkout: Path, patches: Sequence[Patch]) -> None:
    """Apply every patch and print what was done, so the table's reader sees the whole difference."""
    for patch in patches:
        print(f"patch {patch.file} ({patch.apply(checkout)}): {patch.reason}", file=sys.stderr)


def patch_lines(patches: Sequence[Patch]) -> str:
    return "; ".join(f"`{p.file}`: {p.reason}" for p in patches)


def checkout_commit(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "not a git work tree"


def official_env(work: Path, device: str) -> dict[str, str]:
    """The environment of the official runs: ``ffmpeg`` on ``PATH`` (the official code calls it by name)
    linked to the binary lipsync uses, so both sides encode with the same build; no CUDA for ``cpu``."""
    folder = work / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "ffmpeg"
    if not link.exists():
        link.symlink_to(ffmpeg_exe())
    env = {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the official code picks CUDA whenever it sees one
    return env


def place(target: Path, source: Path) -> None:
    """Link ``source`` at ``target`` (where the official code looks for a weight file).

    An existing link is replaced; a real file is kept only when it is byte-identical, so that both
    sides always load the same weights."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        if _sha256(target) != _sha256(source):
            sys.exit(f"{target} differs from {source}: move it away so both sides use the same weights")
        return
    target.symlink_to(source.resolve())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_timed(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> float:
    """Run the official command; return its wall-clock seconds. Its output goes to ``log``."""
    with log.open("w") as out:
        started = time.perf_counter()
        done = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        sys.exit(f"the official code failed ({done.returncode}); log {log}:\n{tail}")
    return wall
