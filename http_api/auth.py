"""Bearer-token access control from the headers alone, before admission and before a byte of the body is read.

The API token (optional) guards the APIs; the operator token guards PUT and DELETE /destinations/{name}
and is a separate, stricter secret. Checking either after the body would let anyone without a token
hold a receiving slot for as long as the body deadline allows.
"""

from __future__ import annotations

import hmac

from .asgi import ASGIApp, Receive, Scope, Send, header, send_error
from .routes import OPEN_PATHS, OPEN_PREFIXES, OPERATOR_PREFIX

OPERATOR_METHODS = frozenset({"PUT", "DELETE"})
CLOSED = ("Managing the gallery over the API is turned off: the operator sets SWAPAROONY_ADMIN_TOKEN on the server "
          "and sends 'Authorization: Bearer <that token>'.")
WRONG = "Missing or wrong operator token: send 'Authorization: Bearer <SWAPAROONY_ADMIN_TOKEN>'."


class BearerTokenMiddleware:
    """Answers 401 unless the API token matches (when one is set), 403 unless the operator token matches on the
    operator routes; probes, docs and preflights stay open. Nothing is answered 401/403 after reading a body."""

    def __init__(self, app: ASGIApp, token: str | None, operator_token: str | None) -> None:
        self.app = app
        self.expected = token.encode() if token else None
        self.operator_expected = operator_token.encode() if operator_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif _is_operator_route(scope):
            await self._operator(scope, receive, send)
        elif self.expected is None or _is_open(scope) or _presents(scope, self.expected):
            await self.app(scope, receive, send)
        else:
            await send_error(send, 401, "Missing or wrong API token: send the header 'Authorization: Bearer <token>'.",
                             "unauthorized", [(b"www-authenticate", b'Bearer realm="swaparoony"')])

    async def _operator(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.operator_expected is None:
            await send_error(send, 403, CLOSED, "admin_disabled")
        elif not _presents(scope, self.operator_expected):
            await send_error(send, 403, WRONG, "forbidden")
        else:
            await self.app(scope, receive, send)


def _is_operator_route(scope: Scope) -> bool:
    return scope.get("method") in OPERATOR_METHODS and scope.get("path", "").startswith(OPERATOR_PREFIX)


def _is_open(scope: Scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "OPTIONS" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _presents(scope: Scope, expected: bytes) -> bool:
    scheme, _, supplied = (header(scope, b"authorization") or b"").strip().partition(b" ")
    # RFC 7235: the scheme is case-insensitive; the token is compared in constant time (no timing oracle).
    return scheme.lower() == b"bearer" and hmac.compare_digest(supplied.strip(), expected)
