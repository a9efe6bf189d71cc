"""The weights store: pretrained files kept flat under one folder and verified by size and sha256.

whisper's ``_download`` semantics with hf's ``_download_to_tmp_and_move``: a missing file downloads from its
mirrors into ``.<name>.partial`` (resumed with ``Range``, hashed while streaming) and is renamed into place
only when its sha256 matches, under one file lock per file. A verified file gets a stamp
``.<name>.verified`` so later runs trust it without re-hashing while its size and mtime are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Literal

import filelock
import httpx
from lipsync_kit.files import find_partials, partial_path

from . import __version__, paths
from .catalogue import MODELS, WeightFile
from .errors import ErrorCode, LipsyncError
from .output import Reporter, Task

__all__ = ["MIRROR_ENV", "OFFLINE_ENV", "Status", "WeightsStore", "resolve_custom", "sha256_file"]

Status = Literal["ok", "missing", "mismatch"]

MIRROR_ENV: Final = "LIPSYNC_WEIGHTS_MIRROR"  # base URL; ``<base>/<name>`` is tried before the manifest
OFFLINE_ENV: Final = "LIPSYNC_OFFLINE"  # "1": never touch the network
CHUNK_SIZE: Final = 1 << 20  # 1 MiB, for hashing and copying
MAX_RESUMES: Final = 3  # resumes of one mirror after dropped connections that made progress

_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
_HEADERS: Final = {
    "User-Agent": f"lipsync-cli/{__version__}",
    # Ranges count encoded bytes: a gzip answer would make resumed offsets meaningless.
    "Accept-Encoding": "identity",
}


class _MirrorFailed(Exception):
    """One URL could not deliver the file; the short reason goes into the final error."""


class _Dropped(Exception):
    """The body ended before the expected size; what arrived is kept for a resume."""


class WeightsStore:
    """Pretrained files stored flat under ``root`` (default ``paths.weights_dir()``) by name."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else paths.weights_dir()

    def path_for(self, wf: WeightFile) -> Path:
        return self.root / wf.name

    def status(self, wf: WeightFile) -> Status:
        """``ok`` when present and verified, ``missing``, or ``mismatch`` (wrong size or sha256)."""
        return self._verify(wf)[0]

    def urls(self, wf: WeightFile) -> list[str]:
        """Where ``wf`` is downloaded from, in order: ``$LIPSYNC_WEIGHTS_MIRROR`` first, then the manifest."""
        urls = list(wf.urls)
        if base := os.environ.get(MIRROR_ENV, "").strip():
            urls.insert(0, f"{base.rstrip('/')}/{wf.name}")
        return list(dict.fromkeys(urls))

    def ensure(self, wf: WeightFile, reporter: Reporter) -> Path:
        """The path of ``wf``, verified, downloading it first when it is missing.

        Raises:
            LipsyncError: ``weights_mismatch`` for a stored file that fails verification,
                ``weights_missing`` when it is missing and ``LIPSYNC_OFFLINE=1``,
                ``download_failed`` when no mirror delivered it.
        """
        if self._present(wf):
            return self.path_for(wf)
        if _offline():
            raise self._offline_error(wf)
        with self._locked(wf, reporter):
            # Another process may have finished it while this one waited for the lock.
            if not self._present(wf):
                self._download(wf, reporter)
        return self.path_for(wf)

    def fetch(self, wf: WeightFile, reporter: Reporter, force: bool = False) -> Path:
        """Like `ensure`; ``force`` downloads again even when a verified copy is present."""
        if not force:
            return self.ensure(wf, reporter)
        if _offline():
            raise self._offline_error(wf)
        with self._locked(wf, reporter):
            self._download(wf, reporter)
        return self.path_for(wf)

    def remove(self, wf: WeightFile) -> bool:
        """Delete ``wf``, its stamp and any partial download; True when the file was there."""
        with self._locked(wf):
            self._stamp_path(wf).unlink(missing_ok=True)
            for partial in find_partials(self.path_for(wf)):
                partial.unlink(missing_ok=True)
            try:
                self.path_for(wf).unlink()
            except FileNotFoundError:
                return False
        return True

    def import_file(self, src: Path, candidates: Iterable[WeightFile]) -> WeightFile:
        """Copy a file fetched by hand into the store, as the candidate whose sha256 it has.

        Raises:
            LipsyncError: ``weights_missing`` when ``src`` is not a readable file,
                ``weights_mismatch`` when it matches none of ``candidates``.
        """
        src = resolve_custom(src)
        candidates = tuple(candidates)
        size = src.stat().st_size
        if not any(wf.size == size for wf in candidates):
            raise _no_match_error(src, f"{size:,} bytes", candidates)
        self.root.mkdir(parents=True, exist_ok=True)
        _check_free_space(self.root, size, src.name, ErrorCode.OUTPUT_UNWRITABLE)
        # Copy and hash in one pass; a unique temp name, since the target name is not known yet.
        tmp = partial_path(self.root / src.name, secrets.token_hex(4))
        try:
            hasher = hashlib.sha256()
            with src.open("rb") as fin, tmp.open("xb") as fout:
                while chunk := fin.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    fout.write(chunk)
            digest = hasher.hexdigest()
            found = next((wf for wf in candidates if (wf.size, wf.sha256) == (size, digest)), None)
            if found is None:
                raise _no_match_error(src, f"sha256 {digest}", candidates)
            with self._locked(found):
                self._partial_path(found).unlink(missing_ok=True)
                self._install(found, tmp)
        finally:
            tmp.unlink(missing_ok=True)
        return found

    # -- verification -------------------------------------------------------------------------------

    def _present(self, wf: WeightFile) -> bool:
        """True when verified, False when missing; a mismatch raises ``weights_mismatch``."""
        state, found = self._verify(wf)
        if state == "mismatch":
            raise LipsyncError(
                ErrorCode.WEIGHTS_MISMATCH,
                f"{wf.name} at {self.path_for(wf)} is not the expected file: {found}",
                hint=f"download it again with `lipsync weights fetch {_model_of(wf)} --force`, "
                f"or add a good copy with `lipsync weights import {_model_of(wf)} FILE`",
            )
        return state == "ok"

    def _verify(self, wf: WeightFile) -> tuple[Status, str]:
        """The state of the stored file and, for a mismatch, what was found instead."""
        path = self.path_for(wf)
        try:
            st = path.stat()
        except FileNotFoundError:
            return "missing", ""
        if st.st_size != wf.size:
            return "mismatch", f"{st.st_size:,} bytes, expected {wf.size:,}"
        if self._stamp_matches(wf, st):
            return "ok", ""
        digest = sha256_file(path)
        if digest != wf.sha256:
            return "mismatch", f"sha256 {digest}, expected {wf.sha256}"
        # ``st`` predates the hash: a write while hashing changes mtime and voids this stamp.
        self._write_stamp(wf, st)
        return "ok", ""

    def _stamp_path(self, wf: WeightFile) -> Path:
        return self.root / f".{wf.name}.verified"

    def _stamp_matches(self, wf: WeightFile, st: os.stat_result) -> bool:
        try:
            stamp = json.loads(self._stamp_path(wf).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return stamp == _stamp_body(wf, st)

    def _write_stamp(self, wf: WeightFile, st: os.stat_result) -> None:
        stamp = self._stamp_path(wf)
        tmp = stamp.with_name(f"{stamp.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_text(json.dumps(_stamp_body(wf, st)), encoding="utf-8")
            os.replace(tmp, stamp)
        except OSError:
            pass  # a read-only store still works; it is only re-hashed on every run
        finally:
            tmp.unlink(missing_ok=True)

    def _install(self, wf: WeightFile, verified: Path) -> None:
        """Move a verified file into place and stamp it; the caller holds the file's lock."""
        # An mtime no later write can produce (writes get "now"), so even an edit within the same clock
        # tick as this install changes mtime_ns and voids the stamp.
        past_ns = (time.time_ns() // 1_000_000_000 - 1) * 1_000_000_000
        os.utime(verified, ns=(verified.stat().st_atime_ns, past_ns))
        self._stamp_path(wf).unlink(missing_ok=True)
        path = self.path_for(wf)
        os.replace(verified, path)
        self._write_stamp(wf, path.stat())

    # -- download -----------------------------------------------------------------------------------

    def _partial_path(self, wf: WeightFile) -> Path:
        """Where a download grows until verified: one fixed name, so the next run resumes it."""
        return partial_path(self.path_for(wf))

    @contextmanager
    def _locked(self, wf: WeightFile, reporter: Reporter | None = None) -> Iterator[None]:
        """Hold the file's lock; tell the user when another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.root / f"{wf.name}.lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if reporter is not None:
                reporter.info(f"waiting for another lipsync process to finish with {wf.name} …")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _download(self, wf: WeightFile, reporter: Reporter) -> None:
        """Fetch ``wf`` from its mirrors in order and install it; the caller holds the file's lock."""
        partial = self._partial_path(wf)
        _check_free_space(self.root, wf.size - _size(partial), wf.name, ErrorCode.DOWNLOAD_FAILED)
        urls = self.urls(wf)
        failures: list[str] = []
        with (
            reporter.task(f"downloading {wf.name}", total=wf.size, bytes_=True) as task,
            httpx.Client(follow_redirects=True, timeout=_TIMEOUT, headers=_HEADERS) as client,
        ):
            for i, url in enumerate(urls):
                try:
                    _fetch_from(client, url, wf, partial, task)
                except _MirrorFailed as err:
                    failures.append(f"{url}: {err}")
                    if i + 1 < len(urls):
                        reporter.warn(f"{wf.name}: {url}: {err}; trying the next mirror")
                    continue
                self._install(wf, partial)
                return
        reasons = "".join(f"\n  {line}" for line in failures) or " no download URL is known"
        raise LipsyncError(
            ErrorCode.DOWNLOAD_FAILED,
            f"could not download {wf.name} to {self.path_for(wf)}:{reasons}",
            hint=_manual_hint(wf),
        )

    def _offline_error(self, wf: WeightFile) -> LipsyncError:
        urls = "".join(f"\n  {url}" for url in self.urls(wf))
        return LipsyncError(
            ErrorCode.WEIGHTS_MISSING,
            f"{wf.name} is needed at {self.path_for(wf)}, and {OFFLINE_ENV}=1 forbids downloading it",
            hint=f"download it from one of:{urls}\n{_manual_hint(wf)}",
        )


def _fetch_from(client: httpx.Client, url: str, wf: WeightFile, partial: Path, task: Task) -> None:
    """Complete ``partial`` from ``url`` until its sha256 matches, or raise `_MirrorFailed`.

    Dropped connections keep the partial and resume; a wrong hash deletes it.
    """
    resumes = 0
    while True:
        before = _size(partial)
        try:
            digest, resumed = _stream(client, url, wf, partial, task)
        except (httpx.HTTPError, httpx.InvalidURL, _Dropped) as err:
            if _size(partial) > before and resumes < MAX_RESUMES:
                resumes += 1
                continue
            raise _MirrorFailed(_describe(err)) from err
        if digest == wf.sha256:
            return
        partial.unlink(missing_ok=True)
        if not resumed:
            raise _MirrorFailed(f"wrong content (sha256 {digest[:16]}…)")
        # The bad bytes may be a stale leftover rather than this mirror's: once more from zero.


def _stream(client: httpx.Client, url: str, wf: WeightFile, partial: Path, task: Task) -> tuple[str, bool]:
    """Append the rest of ``url`` to ``partial``; the sha256 of the whole and whether it was resumed."""
    offset = _size(partial)
    if offset > wf.size:
        partial.unlink()
        offset = 0
    hasher = hashlib.sha256()
    if offset:
        _hash_into(hasher, partial)
    if offset == wf.size:
        return hasher.hexdigest(), True
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as resp:
        if offset and resp.status_code == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise _MirrorFailed(f"asked for bytes {offset}-, got Content-Range {content_range!r}")
            mode = "ab"
        elif resp.status_code == 200:  # a fresh start, or a server that ignores Range: restart from zero
            offset, mode, hasher = 0, "wb", hashlib.sha256()
        else:
            raise _MirrorFailed(f"HTTP {resp.status_code} {resp.reason_phrase}".strip())
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and offset + int(length) != wf.size:
            raise _MirrorFailed(f"serves {offset + int(length):,} bytes, expected {wf.size:,}")
        done = offset
        task.update(done, wf.size)
        with partial.open(mode) as f:
            for chunk in resp.iter_bytes():
                done += len(chunk)
                if done > wf.size:
                    break
                f.write(chunk)
                hasher.update(chunk)
                task.update(done)
    if done > wf.size:
        partial.unlink(missing_ok=True)
        raise _MirrorFailed(f"serves more than the expected {wf.size:,} bytes")
    if done < wf.size:
        raise _Dropped(f"connection closed after {done:,} of {wf.size:,} bytes")
    return hasher.hexdigest(), offset > 0


def resolve_custom(path: Path) -> Path:
    """The absolute path of a user checkpoint outside the manifest; it is not hash-checked."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file() or not os.access(resolved, os.R_OK):
        problem = "is not a readable file" if resolved.exists() else "does not exist"
        raise LipsyncError(ErrorCode.WEIGHTS_MISSING, f"weights file {path} {problem}")
    return resolved


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    return _hash_into(hashlib.sha256(), path).hexdigest()


def _hash_into(hasher: hashlib._Hash, path: Path) -> hashlib._Hash:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher


def _stamp_body(wf: WeightFile, st: os.stat_result) -> dict[str, object]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": wf.sha256}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _check_free_space(folder: Path, needed: int, what: str, code: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise LipsyncError(
            code,
            f"not enough free space in {folder} for {what}: "
            f"{needed / 1e6:,.1f} MB needed, {free / 1e6:,.1f} MB free",
            hint="free some space, or move the store elsewhere with LIPSYNC_HOME",
        )


def _describe(err: Exception) -> str:
    """A short reason for one mirror's failure."""
    if isinstance(err, httpx.TimeoutException):
        return "timed out"
    if isinstance(err, httpx.ConnectError):
        return f"cannot connect ({err})" if str(err) else "cannot connect"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "…"


def _model_of(wf: WeightFile) -> str:
    """A model that uses the file, for the commands hints name (``lipsync weights import MODEL FILE``)."""
    return next(
        (m.name for m in MODELS.values() if any(wf.name in role.choices for role in m.roles)), "MODEL"
    )


def _manual_hint(wf: WeightFile) -> str:
    where = f" (by hand: {wf.manual})" if wf.manual else ""
    return (
        f"download {wf.name}{where} and add it with `lipsync weights import {_model_of(wf)} FILE`, "
        f"or set {MIRROR_ENV} to a mirror that serves it"
    )


def _no_match_error(src: Path, found: str, candidates: tuple[WeightFile, ...]) -> LipsyncError:
    expected = "".join(f"\n  {wf.name}: {wf.size:,} bytes, sha256 {wf.sha256}" for wf in candidates)
    return LipsyncError(
        ErrorCode.WEIGHTS_MISMATCH,
        f"{src} ({found}) is none of the known weight files:{expected}",
        hint="check that the download finished, and that it is the official file",
    )
