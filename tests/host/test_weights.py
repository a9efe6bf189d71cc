"""The weights store against a real loopback HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lipsync_cli import weights
from lipsync_cli.catalogue import WeightFile
from lipsync_cli.errors import ErrorCode, LipsyncError
from lipsync_cli.output import Reporter, Task
from lipsync_cli.weights import MIRROR_ENV, OFFLINE_ENV, WeightsStore, resolve_custom

SIZE = 300_000
NAME = "model.pth"


@dataclass
class Served:
    """What the server answers for one path."""

    body: bytes
    status: int = 200
    drops: int = 0  # how many answers are cut after `drop_after` body bytes
    drop_after: int = 100_000
    ignore_range: bool = False
    delay: float = 0.0  # seconds between 16 KB chunks


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        srv = self.server
        spec = srv.files.get(self.path)
        range_header = self.headers.get("Range")
        with srv.mutex:
            srv.requests.append((self.path, range_header))
        if spec is None or spec.status != 200:
            self.send_response(spec.status if spec else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if range_header and not spec.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(spec.body) - 1}/{len(spec.body)}")
        else:
            self.send_response(200)
        payload = spec.body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if spec.drops > 0:
            spec.drops -= 1
            self.wfile.write(payload[: spec.drop_after])
            self.wfile.flush()
            self.close_connection = True  # the client sees fewer bytes than Content-Length
            return
        for i in range(0, len(payload), 16_384):
            self.wfile.write(payload[i : i + 16_384])
            if spec.delay:
                time.sleep(spec.delay)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.mutex = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def hits(self, path: str) -> int:
        return sum(p == path for p, _ in self.requests)


class Recorder(Reporter):
    """Keeps what the store reports; ``interrupt_at`` raises KeyboardInterrupt past that many bytes."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.messages: list[str] = []
        self.done = 0.0
        self.interrupt_at = interrupt_at

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warn(self, message: str) -> None:
        self.messages.append(message)

    @contextmanager
    def task(self, description: str, total: float | None = None, *, bytes_: bool = False) -> Iterator[Task]:
        recorder = self

        class _Task(Task):
            def update(self, done: float, total: float | None = None) -> None:
                recorder.done = done
                if recorder.interrupt_at is not None and done > recorder.interrupt_at:
                    raise KeyboardInterrupt

        yield _Task()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def store(tmp_path: Path) -> WeightsStore:
    return WeightsStore(tmp_path / "weights")


def body_of(seed: int = 0, size: int = SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def spec_for(server: Server, body: bytes, *mirrors: str, name: str = NAME) -> WeightFile:
    """A manifest entry for ``body``, served from ``/<mirror>/<name>`` for each mirror."""
    return WeightFile(
        name=name,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        urls=tuple(server.url(f"/{m}/{name}") for m in mirrors),
        description="stand-in",
        manual="http://127.0.0.1/manual-page",
    )


def serve(server: Server, body: bytes, *mirrors: str, name: str = NAME, **kw: object) -> WeightFile:
    for m in mirrors:
        server.files[f"/{m}/{name}"] = Served(body, **kw)  # type: ignore[arg-type]
    return spec_for(server, body, *mirrors, name=name)


def leftovers(store: WeightsStore) -> set[str]:
    """Names in the store other than lock files."""
    return {p.name for p in store.root.iterdir() if not p.name.endswith(".lock")}


def test_download_verifies_and_stamps(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a")
    rec = Recorder()
    path = store.ensure(wf, rec)
    assert path == store.root / NAME
    assert path.read_bytes() == body
    assert rec.done == SIZE
    stamp = json.loads((store.root / f".{NAME}.verified").read_text())
    assert stamp == {"size": SIZE, "mtime_ns": path.stat().st_mtime_ns, "sha256": wf.sha256}
    assert leftovers(store) == {NAME, f".{NAME}.verified"}
    assert store.status(wf) == "ok"
    assert server.requests == [("/a/model.pth", None)]


def test_later_runs_trust_the_stamp(
    server: Server, store: WeightsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = serve(server, body_of(), "a")
    store.ensure(wf, Recorder())
    hashed: list[Path] = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: hashed.append(p) or real(p))

    assert WeightsStore(store.root).ensure(wf, Recorder()) == store.path_for(wf)
    assert server.hits("/a/model.pth") == 1
    assert hashed == []

    # Any change of mtime voids the stamp: the next check hashes again, once.
    path = store.path_for(wf)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    assert store.status(wf) == "ok"
    assert store.status(wf) == "ok"
    assert hashed == [path]


def test_resume_after_dropped_connection(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a", drops=1)
    assert store.ensure(wf, Recorder()).read_bytes() == body
    (_, no_range), (_, resumed) = server.requests
    assert no_range is None
    assert resumed is not None and resumed.startswith("bytes=") and resumed != "bytes=0-"


def test_partial_survives_a_failed_run_and_resumes(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a", drops=100, drop_after=20_000)
    with pytest.raises(LipsyncError) as exc:
        store.ensure(wf, Recorder())
    assert exc.value.code == ErrorCode.DOWNLOAD_FAILED
    partial = store.root / f".{NAME}.partial"
    kept = partial.stat().st_size
    assert 0 < kept < SIZE
    assert not store.path_for(wf).exists()

    server.files["/a/model.pth"].drops = 0
    server.requests.clear()
    assert store.ensure(wf, Recorder()).read_bytes() == body
    assert server.requests == [("/a/model.pth", f"bytes={kept}-")]
    assert not partial.exists()


def test_interrupt_leaves_only_the_partial(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a")
    with pytest.raises(KeyboardInterrupt):
        store.ensure(wf, Recorder(interrupt_at=50_000))
    assert leftovers(store) == {f".{NAME}.partial"}
    assert store.status(wf) == "missing"
    assert store.ensure(wf, Recorder()).read_bytes() == body  # the lock was released
    assert server.requests[-1][1] is not None


def test_server_ignoring_range_restarts_from_zero(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a", ignore_range=True)
    store.root.mkdir(parents=True)
    (store.root / f".{NAME}.partial").write_bytes(body[:100_000])
    assert store.ensure(wf, Recorder()).read_bytes() == body
    assert server.requests == [("/a/model.pth", "bytes=100000-")]


def test_stale_partial_with_wrong_bytes_is_discarded(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a")
    store.root.mkdir(parents=True)
    (store.root / f".{NAME}.partial").write_bytes(body_of(seed=9, size=100_000))
    assert store.ensure(wf, Recorder()).read_bytes() == body
    assert server.requests == [("/a/model.pth", "bytes=100000-"), ("/a/model.pth", None)]


def test_first_mirror_404_then_second(server: Server, store: WeightsStore) -> None:
    body = body_of()
    serve(server, body, "b")
    wf = spec_for(server, body, "a", "b")  # nothing is served under /a/
    rec = Recorder()
    assert store.ensure(wf, rec).read_bytes() == body
    assert [p for p, _ in server.requests] == ["/a/model.pth", "/b/model.pth"]
    assert any("404" in m for m in rec.messages)


def test_mirror_env_is_tried_first(
    server: Server, store: WeightsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = body_of()
    wf = serve(server, body, "a", "local")
    monkeypatch.setenv(MIRROR_ENV, server.url("/local/"))
    assert store.ensure(wf, Recorder()).read_bytes() == body
    assert server.hits("/local/model.pth") == 1
    assert server.hits("/a/model.pth") == 0


def test_all_mirrors_failing(server: Server, store: WeightsStore) -> None:
    body = body_of()
    serve(server, body_of(seed=1), "b")  # same size, wrong bytes
    wf = spec_for(server, body, "a", "b")
    with pytest.raises(LipsyncError) as exc:
        store.ensure(wf, Recorder())
    err = exc.value
    assert err.code == ErrorCode.DOWNLOAD_FAILED
    assert server.url("/a/model.pth") in err.message and "404" in err.message
    assert server.url("/b/model.pth") in err.message and "sha256" in err.message
    assert "lipsync weights import" in (err.hint or "")
    assert leftovers(store) == set()


def test_wrong_bytes_are_not_stored(server: Server, store: WeightsStore) -> None:
    wf = spec_for(server, body_of(), "a")
    serve(server, body_of(seed=1), "a")
    with pytest.raises(LipsyncError) as exc:
        store.ensure(wf, Recorder())
    assert exc.value.code == ErrorCode.DOWNLOAD_FAILED
    assert store.status(wf) == "missing"
    assert leftovers(store) == set()


def test_tampered_file_is_a_mismatch(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a")
    path = store.ensure(wf, Recorder())
    with path.open("r+b") as f:  # same size, one byte changed, right after the stamp was written
        f.seek(1234)
        f.write(bytes([body[1234] ^ 0xFF]))
    assert store.status(wf) == "mismatch"
    with pytest.raises(LipsyncError) as exc:
        store.ensure(wf, Recorder())
    err = exc.value
    assert err.code == ErrorCode.WEIGHTS_MISMATCH
    assert str(path) in err.message and wf.sha256 in err.message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in err.message
    assert "--force" in (err.hint or "") and "lipsync weights import" in (err.hint or "")

    assert store.fetch(wf, Recorder(), force=True).read_bytes() == body
    assert store.status(wf) == "ok"


def test_offline_mode_never_downloads(
    server: Server, store: WeightsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = serve(server, body_of(), "a")
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(LipsyncError) as exc:
        store.ensure(wf, Recorder())
    err = exc.value
    assert err.code == ErrorCode.WEIGHTS_MISSING
    assert str(store.path_for(wf)) in err.message
    hint = err.hint or ""
    assert wf.urls[0] in hint and wf.manual in hint and "`lipsync weights import MODEL FILE`" in hint
    assert server.requests == []


def test_import_matching_file(server: Server, store: WeightsStore, tmp_path: Path) -> None:
    body = body_of()
    other = spec_for(server, body_of(seed=5, size=1000), "a", name="other.pth")
    wf = spec_for(server, body, "a")
    src = tmp_path / "Downloads" / "wav2lip (1).pth"
    src.parent.mkdir()
    src.write_bytes(body)
    assert store.import_file(src, [other, wf]) == wf
    assert store.path_for(wf).read_bytes() == body
    assert src.read_bytes() == body
    assert leftovers(store) == {NAME, f".{NAME}.verified"}
    assert store.status(wf) == "ok"
    assert server.requests == []


@pytest.mark.parametrize(
    "payload", [body_of(seed=1), body_of(size=SIZE - 1)], ids=["same-size", "other-size"]
)
def test_import_rejects_unknown_file(
    server: Server, store: WeightsStore, tmp_path: Path, payload: bytes
) -> None:
    wf = spec_for(server, body_of(), "a")
    src = tmp_path / "download.pth"
    src.write_bytes(payload)
    with pytest.raises(LipsyncError) as exc:
        store.import_file(src, [wf])
    assert exc.value.code == ErrorCode.WEIGHTS_MISMATCH
    assert NAME in exc.value.message and wf.sha256 in exc.value.message
    assert not store.path_for(wf).exists()
    assert not store.root.exists() or leftovers(store) == set()


def test_concurrent_ensure_downloads_once(server: Server, store: WeightsStore) -> None:
    body = body_of()
    wf = serve(server, body, "a", delay=0.01)
    barrier = threading.Barrier(2)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(WeightsStore(store.root).ensure(wf, Recorder()).read_bytes())
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == [body, body]
    assert server.hits("/a/model.pth") == 1


def test_remove(server: Server, store: WeightsStore) -> None:
    wf = serve(server, body_of(), "a")
    store.ensure(wf, Recorder())
    assert store.remove(wf) is True
    assert store.status(wf) == "missing"
    assert leftovers(store) == set()
    assert store.remove(wf) is False


def test_resolve_custom(tmp_path: Path) -> None:
    ckpt = tmp_path / "mine.pth"
    ckpt.write_bytes(b"not checked")
    assert resolve_custom(ckpt) == ckpt.resolve()
    for bad in (tmp_path / "absent.pth", tmp_path):
        with pytest.raises(LipsyncError) as exc:
            resolve_custom(bad)
        assert exc.value.code == ErrorCode.WEIGHTS_MISSING
        assert str(bad) in exc.value.message
