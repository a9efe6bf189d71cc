"""tests/run's last step: the skip log of tests/conftest.py and tests/check_skips.py, on a real pytest run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]

SAMPLE_TESTS = """
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")


def test_runs():
    pass


@pytest.mark.cuda
@pytest.mark.skipif(True, reason="needs CUDA")
def test_cuda_only():
    pass


def test_needs_a_program():
    if {missing}:
        pytest.skip("espeak-ng is not installed")


@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False
"""


def _run_suite(folder: Path, missing: bool) -> subprocess.CompletedProcess[str]:
    """pytest on a sample suite with tests/conftest.py, then tests/check_skips.py on its skip log."""
    folder.mkdir()
    shutil.copyfile(TESTS_DIR / "conftest.py", folder / "conftest.py")
    (folder / "test_sample.py").write_text(SAMPLE_TESTS.format(missing=missing))
    log = folder / "skips.jsonl"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--skip-log", str(log)]
    subprocess.run([*argv, str(folder)], cwd=folder, check=True, capture_output=True)
    check = [sys.executable, str(TESTS_DIR / "check_skips.py"), str(log)]
    return subprocess.run(check, capture_output=True, text=True)


def test_cuda_only_skips_pass(tmp_path: Path) -> None:
    result = _run_suite(tmp_path / "suite", missing=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "skipped: 1 CUDA-only test(s), 0 other(s)"
    logged = [json.loads(line) for line in (tmp_path / "suite" / "skips.jsonl").read_text().splitlines()]
    expected = {"test": "test_sample.py::test_cuda_only", "cuda": True, "reason": "Skipped: needs CUDA"}
    assert logged == [expected]  # neither the passing test nor the xfail


def test_any_other_skip_fails_and_is_named(tmp_path: Path) -> None:
    result = _run_suite(tmp_path / "suite", missing=True)
    assert result.returncode == 1
    assert "1 test(s) skipped for a reason other than CUDA" in result.stderr
    assert "test_sample.py::test_needs_a_program: Skipped: espeak-ng is not installed" in result.stderr
    assert "test_cuda_only" not in result.stderr


@pytest.mark.parametrize("content", ["", '{"test": "a.py", "cuda": false, "reason": "import"}\n'])
def test_empty_log_passes_and_a_skipped_module_fails(tmp_path: Path, content: str) -> None:
    log = tmp_path / "skips.jsonl"
    log.write_text(content)
    result = subprocess.run([sys.executable, str(TESTS_DIR / "check_skips.py"), str(log)], check=False)
    assert result.returncode == (1 if content else 0)
