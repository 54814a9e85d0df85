"""A request body read whole before any work starts: bounded in bytes, and in time by a minimum rate.

Without the byte bound Starlette reads a body of any size, spooling file parts past its threshold to
an unlinked temporary file (a face on disk) before the engine can say 413. Without the time bound a
client that sends one byte every two seconds holds its place for as long as it likes. The rule is
Apache mod_reqtimeout's: `timeout_s` for the body, extended by one second for every `min_rate` bytes
that arrive, so a slow but honest upload goes on and a trickle is answered 408.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .asgi import Message, Receive, Scope, header

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyRefused(Exception):
    """The body cannot be taken; `status`, `code` and the message say why."""

    status = 400
    code = "bad_request"


class BodyTooLarge(BodyRefused):
    """More bytes than the path's limit, declared or counted."""

    status = 413
    code = "too_large"


class BodyTooSlow(BodyRefused):
    """The body fell behind the minimum rate."""

    status = 408
    code = "body_timeout"


class ClientGone(Exception):
    """The client closed the connection before its body was complete."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the client closed the connection after {received:,} bytes of its body")
        self.received = received


@dataclass(frozen=True)
class BodyRules:
    """How large a body may be (per path, else the default) and how fast it must arrive."""

    default_limit: int
    limits: dict[str, int]
    timeout_s: float
    min_rate: int

    def limit(self, scope: Scope) -> int:
        return self.limits.get(scope.get("path", ""), self.default_limit)

    def check_declared(self, scope: Scope) -> None:
        """Refuse from Content-Length alone, before a byte of the body is read."""
        declared = header(scope, b"content-length")
        limit = self.limit(scope)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise too_large(int(declared) if declared.isdigit() else None, limit)

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, or BodyTooLarge, BodyTooSlow or ClientGone."""
        limit, chunks, received = self.limit(scope), [], 0
        started = time.monotonic()
        while True:
            allowed = started + self.timeout_s + received / self.min_rate - time.monotonic()
            message = await self._next(receive, allowed, received, started)
            if message["type"] == "http.disconnect":
                raise ClientGone(received)
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise too_large(None, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _next(self, receive: Receive, allowed_s: float, received: int, started: float) -> Message:
        try:
            return await asyncio.wait_for(receive(), max(allowed_s, 0.0))
        except TimeoutError:
            took = time.monotonic() - started
            raise BodyTooSlow(
                f"The request body arrived too slowly: {received:,} bytes in {took:.0f} seconds. After "
                f"{self.timeout_s:g} seconds a body must keep up {self.min_rate:,} bytes per second on average; "
                "retry on a better connection or with a smaller photo."
            ) from None


def too_large(declared: int | None, limit: int) -> BodyTooLarge:
    size = f"{declared:,} bytes" if declared is not None else "larger than the limit"
    return BodyTooLarge(f"The request body is {size}; the limit is {limit:,} bytes. Upload a smaller photo.")


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then the connection's own messages (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
