"""Optional bearer-token access control for the public API."""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({
    "/livez", "/readyz", "/healthz", "/metrics",           # probes and monitoring
    "/api/v1/health", "/v1/models/swaparoony-face-swap",    # the original API's health routes
    "/", "/docs.json",                                      # Swagger UI and the OpenAPI document
})
OPEN_PREFIXES = ("/static_content/",)


class BearerTokenMiddleware:
    """Answers 401 unless `Authorization: Bearer <token>` matches; probes, docs and preflights stay open."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_open(scope) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "Missing or wrong API token: send the header 'Authorization: Bearer <token>'.",
                           "code": "unauthorized"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="swaparoony"'),
        ]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _is_open(scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope.get("method") == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def _authorized(self, scope: Scope) -> bool:
        supplied = next((value for name, value in scope.get("headers", []) if name == b"authorization"), b"")
        return hmac.compare_digest(supplied, self.expected)  # constant time: no timing oracle on the token
