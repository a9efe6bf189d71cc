"""The client side of the API, for ``lipsync run --server`` and ``lipsync batch --server`` (httpx only).

A job is submitted as a multipart upload, followed over server-sent events and its output downloaded to
a hidden temp file beside the target, renamed into place once complete. Server errors come back as
`LipsyncError` with the server's code, so exit statuses match a local run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import httpx

from ..errors import ErrorCode, LipsyncError

__all__ = ["ServerClient", "server_url"]

_PROBE_TIMEOUT_S: Final = 2.0
_CHUNK: Final = 1 << 20
FINISHED: Final = ("ok", "error", "cancelled", "interrupted")

ProgressHandler = Callable[[dict[str, Any]], None]


def server_url(flag: str | None) -> str | None:
    """``--server`` or else ``LIPSYNC_SERVER``; None when neither is set."""
    value = flag or os.environ.get("LIPSYNC_SERVER") or None
    return value.rstrip("/") if value else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


class ServerClient:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def available(self) -> bool:
        """Whether a lipsync server answers at the URL (a quick health probe)."""
        try:
            response = self._http.get("/v1/health", timeout=_PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("ok") is True

    def _check(self, response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            code, message, hint = body["code"], body["message"], body.get("hint")
        except (ValueError, KeyError, TypeError):
            code, message, hint = ErrorCode.PROTOCOL, f"the server answered {response.status_code}", None
        raise LipsyncError(code, message, hint)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._check(self._http.request(method, path, **kwargs))
        except httpx.HTTPError as err:
            raise LipsyncError(
                ErrorCode.PROTOCOL, f"the server at {self.url} stopped answering: {err}"
            ) from err

    def submit(
        self,
        model: str,
        face: Path,
        audio: Path,
        *,
        options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        fmt: str = "mp4",
        device: str = "auto",
    ) -> dict[str, Any]:
        """Upload the inputs and queue a job; the server checks it as ``lipsync run`` would."""
        fields = {
            "model": model,
            "options": json.dumps({k: _jsonable(v) for k, v in (options or {}).items()}),
            "format": fmt,
            "device": device,
        }
        if seed is not None:
            fields["seed"] = str(seed)
        with open(face, "rb") as image, open(audio, "rb") as speech:
            files = {"image": (face.name or "image", image), "audio": (audio.name or "audio", speech)}
            return self._call("POST", "/v1/jobs", data=fields, files=files)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job at every change until it ends (server-sent events)."""
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:])
        except httpx.HTTPError as err:
            raise LipsyncError(ErrorCode.PROTOCOL, f"lost the server at {self.url}: {err}") from err

    def wait(self, job_id: str, on_progress: ProgressHandler | None = None) -> dict[str, Any]:
        """Follow a job to its end; an ``error``/``cancelled``/``interrupted`` job raises its error."""
        job: dict[str, Any] | None = None
        for job in self.events(job_id):
            if on_progress is not None:
                on_progress(job)
            if job["status"] in FINISHED:
                break
        if job is None or job["status"] not in FINISHED:
            job = self.job(job_id)
        if job["status"] != "ok":
            error = job.get("error") or {}
            raise LipsyncError(
                error.get("code", ErrorCode.INTERNAL), error.get("message", job["status"]), error.get("hint")
            )
        return job

    def download(self, job_id: str, out: BinaryIO) -> None:
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/output", timeout=None) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
        except httpx.HTTPError as err:
            raise LipsyncError(ErrorCode.PROTOCOL, f"the download from {self.url} failed: {err}") from err

    def download_to(self, job_id: str, target: Path, *, overwrite: bool) -> None:
        """Download the output beside ``target`` and rename it into place (never a half-written file)."""
        partial = target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}{target.suffix}")
        try:
            with open(partial, "xb") as out:
                self.download(job_id, out)
            if not overwrite and target.exists():
                raise LipsyncError(
                    ErrorCode.OUTPUT_EXISTS, f"{target} already exists", hint="pass --overwrite to replace it"
                )
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
