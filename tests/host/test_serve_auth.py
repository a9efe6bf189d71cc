"""``lipsync serve`` security: loopback by default, a token everywhere else, never a token in the logs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serve_support import Server

TOKEN = "s3cret-token-for-the-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("serve-auth")
    with Server(home, env={"LIPSYNC_TOKEN": TOKEN}) as running:
        yield running


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": f"Basic {TOKEN}"},
        {"cookie": "lipsync_token=x"},
    ],
)
def test_requests_without_the_token_are_refused(server, headers) -> None:
    for path in ("/v1/models", "/v1/jobs", "/v1/ready", "/docs", "/openapi.json", "/v1/jobs/x/output"):
        response = httpx.get(server.url + path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    response = httpx.post(server.url + "/v1/jobs", headers=headers, files={"image": ("a", b"a")})
    assert response.status_code == 401


def test_the_token_opens_the_api_and_never_reaches_the_log(server) -> None:
    for headers in ({"authorization": f"Bearer {TOKEN}"}, {"cookie": f"lipsync_token={TOKEN}"}):
        assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200
        assert httpx.get(server.url + "/v1/jobs", headers=headers).json() == {"jobs": []}
    # The probe and the page (which asks for the token) need none.
    assert httpx.get(server.url + "/v1/health").json()["ok"] is True
    assert httpx.get(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/web/app.js").status_code == 200
    log = server.log_text()
    assert "Uvicorn running" in log and TOKEN not in log and "wrong-token" not in log


def test_binding_beyond_loopback_needs_a_token(run_cli, tmp_path: Path) -> None:
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", "1", env={"LIPSYNC_TOKEN": ""})
    assert proc.returncode == 2
    assert b"error [bad_option]" in proc.stderr and b"--token" in proc.stderr
