"""Shared file-name facts: the output containers and the partial-file names host and backends agree on."""

from __future__ import annotations

from pathlib import Path

import pytest
from lipsync_kit.files import container_for, find_partials, partial_path


@pytest.mark.parametrize(
    ("name", "container"),
    [("a.mp4", "mp4"), ("a.M4V", "mp4"), ("a.mov", "mp4"), ("a.mkv", "mkv"), ("a.avi", None), ("a", None)],
)
def test_container_for(name: str, container: str | None) -> None:
    assert container_for(Path(name)) == container


def test_partial_names_are_hidden_siblings(tmp_path: Path) -> None:
    dest = tmp_path / "out.mp4"
    assert partial_path(dest) == tmp_path / ".out.mp4.partial"
    assert partial_path(dest, "1a2b") == tmp_path / ".out.mp4.partial-1a2b"


def test_find_partials_finds_only_those_of_its_file(tmp_path: Path) -> None:
    names = [
        ".out.mp4.partial",
        ".out.mp4.partial-1a2b",
        ".out.mp4.partial-ffff",
        ".out.mp4.partially",  # not a partial name
        ".out.mp4.mp4.partial-1a2b",  # another file's
        ".[out].mp4.partial-1a2b",  # glob characters in a name are literal
        "out.mp4",
    ]
    for name in names:
        (tmp_path / name).touch()
    assert [p.name for p in find_partials(tmp_path / "out.mp4")] == names[:3]
    assert [p.name for p in find_partials(tmp_path / "[out].mp4")] == [".[out].mp4.partial-1a2b"]
    assert find_partials(tmp_path / "absent.mkv") == []
