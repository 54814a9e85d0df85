"""Request bodies are bounded before they are read: refused from Content-Length, or counted while they stream.

Without this, Starlette reads a body of any size, spooling file parts past its threshold to an
unlinked temporary file (a face on disk) before the engine can say 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .asgi import ASGIApp, Message, Receive, Scope, Send, abandon, header, send_error

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimitMiddleware:
    """Answers 413 for a body over its path's limit without reading it (or reading no further)."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope.get("path", ""), self.default_limit)
        declared = header(scope, b"content-length")
        if declared is None:
            await self._counted(scope, receive, send, limit)
        elif not declared.isdigit() or int(declared) > limit:
            await _too_large(send, int(declared) if declared.isdigit() else None, limit)
        else:
            await self.app(scope, receive, send)  # the HTTP server delivers no more than Content-Length

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A chunked body: count it as it arrives and stop the app at the first byte past the limit."""
        received = 0
        over = asyncio.Event()
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                over.set()
                await asyncio.Future()  # never returns: the app is cancelled instead
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        app = asyncio.ensure_future(self.app(scope, counting_receive, tracking_send))
        overflow = asyncio.ensure_future(over.wait())
        try:
            await asyncio.wait({app, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            overflow.cancel()
            if not app.done():
                abandon(app)
        if over.is_set():
            if not started:
                await _too_large(send, None, limit)
            return
        await app  # the app's own outcome, exceptions included


async def _too_large(send: Send, declared: int | None, limit: int) -> None:
    size = f"{declared:,} bytes" if declared is not None else "larger than the limit"
    await send_error(send, 413, f"The request body is {size}; the limit is {limit:,} bytes. Upload a smaller photo.",
                     "too_large", [(b"connection", b"close")])
