"""The token check: every request but the health probe and the page's own files must carry the token.

Clients send ``Authorization: Bearer TOKEN``; the web page stores it in a ``lipsync_token`` cookie (a
browser cannot add headers to a ``<video>`` or an ``EventSource``). Compared in constant time; the token
is never logged (the access log is off; the server logs method, path and status only).
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from .statuses import ApiCode

__all__ = ["COOKIE", "TokenGate", "presented_token"]

COOKIE: Final = "lipsync_token"
_OPEN_PATHS: Final = ("/", "/v1/health", "/favicon.ico")
_OPEN_PREFIXES: Final = ("/web/",)


def presented_token(headers: dict[bytes, bytes]) -> str | None:
    """The token a request carries, from its Authorization header or the page's cookie."""
    auth = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    cookie_header = headers.get(b"cookie")
    if cookie_header:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header.decode("latin-1"))
        except Exception:  # a malformed cookie header carries no token
            return None
        if COOKIE in cookies:
            return unquote(cookies[COOKIE].value)
    return None


class TokenGate:
    """ASGI middleware: 401 ``unauthorized`` unless the request carries the server's token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["path"]) or self._carries_token(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"ok": False, "code": ApiCode.UNAUTHORIZED, "message": "missing or wrong token", "hint": None}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _open(path: str) -> bool:
        return path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES)

    def _carries_token(self, scope: Scope) -> bool:
        headers: dict[bytes, Any] = dict(scope["headers"])
        given = presented_token(headers)
        return given is not None and hmac.compare_digest(given.encode(), self._token)
