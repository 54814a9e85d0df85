"""Whose request this is, for the decode queue's turns (swaparoony/imaging/decode_queue.py): the peer, or behind a proxy
the address it appended.

An OpenShift route's HAProxy (and nginx, as the booth frontend sets it up) appends the client's address to
X-Forwarded-For, so the last entry is the one a proxy vouches for. A client that talks to the pod directly can
send any value there; it then only chooses its own turn, which is as fair as one queue for everyone.
"""

from __future__ import annotations

from swaparoony.imaging.decode_queue import CLIENT_KEY

from .asgi import ASGIApp, Receive, Scope, Send, header

MAX_KEY = 64


def client_key(scope: Scope) -> str:
    """The last X-Forwarded-For entry, else the peer's address."""
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(b",", 1)[-1].strip()[:MAX_KEY].decode("latin-1")
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ClientKeyMiddleware:
    """Sets CLIENT_KEY for the request; outermost, so every task the request starts inherits it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = CLIENT_KEY.set(client_key(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_KEY.reset(token)
