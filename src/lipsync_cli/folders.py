"""Output folders: checked before a render, made right before the worker writes, removed if it fails."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ErrorCode, LipsyncError

__all__ = ["check_folder", "make_folders", "remove_empty"]


def check_folder(folder: Path) -> None:
    """The folder exists and is writable, or can be made (its nearest existing ancestor is writable)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LipsyncError(
            ErrorCode.OUTPUT_UNWRITABLE, f"the output folder {folder} cannot be made: {existing} is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LipsyncError(ErrorCode.OUTPUT_UNWRITABLE, f"the output folder {existing} is not writable")


def make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; return the folders made, deepest first."""
    made: list[Path] = []
    missing = folder
    while not missing.exists():
        made.append(missing)
        missing = missing.parent
    for path in reversed(made):
        try:
            path.mkdir()
        except FileExistsError:  # made meanwhile by someone else
            pass
        except OSError as err:
            remove_empty(made)
            raise LipsyncError(
                ErrorCode.OUTPUT_UNWRITABLE, f"cannot make the output folder {path}: {err}"
            ) from err
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed render made, deepest first, as long as they stayed empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:  # not made yet
            continue
        except OSError:  # something was written into it
            return
