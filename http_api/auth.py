"""Optional bearer-token access control for the public API."""

from __future__ import annotations

import hmac

from .asgi import ASGIApp, Receive, Scope, Send, header, send_error

OPEN_PATHS = frozenset({
    "/livez", "/readyz", "/healthz", "/metrics",           # probes and monitoring
    "/api/v1/health", "/v1/models/swaparoony-face-swap",    # the original API's health routes
    "/", "/docs.json",                                      # Swagger UI and the OpenAPI document
})
OPEN_PREFIXES = ("/static_content/",)
OPERATOR_PREFIX = "/destinations/"
"""PUT and DELETE under it check the operator token themselves (http_api/gallery_admin.py), a stricter one."""


class BearerTokenMiddleware:
    """Answers 401 unless `Authorization: Bearer <token>` matches; probes, docs and preflights stay open."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_open(scope) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, 401, "Missing or wrong API token: send the header 'Authorization: Bearer <token>'.",
                         "unauthorized", [(b"www-authenticate", b'Bearer realm="swaparoony"')])

    @staticmethod
    def _is_open(scope: Scope) -> bool:
        path, method = scope.get("path", ""), scope.get("method")
        if method in ("PUT", "DELETE") and path.startswith(OPERATOR_PREFIX):
            return True
        return method == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, supplied = (header(scope, b"authorization") or b"").strip().partition(b" ")
        # RFC 7235: the scheme is case-insensitive; the token is compared in constant time (no timing oracle).
        return scheme.lower() == b"bearer" and hmac.compare_digest(supplied.strip(), self.expected)
