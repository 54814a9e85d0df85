"""Every request is answered by its deadline, and an error that escapes the app is answered at once.

BentoML's own TimeoutMiddleware waits for the app's first `send` or for the timeout, whichever comes
first. An app that raises before sending (any unhandled exception, or a bare CancelledError from
aiohttp's connection pool) therefore leaves the client waiting the whole timeout, and uvicorn's
shutdown waits for it too. This middleware sits inside it with a shorter deadline and always answers
with the service's error body: 504 when time is up, 500 when the app failed without answering, and 499
(nginx's "client closed request") when the app let go of a request whose client had hung up: the
connection is gone, so nobody reads it, but BentoML's middleware stops waiting for it at once (it kept
the request's task, and so a SIGTERM's shutdown, waiting the whole timeout).
"""

from __future__ import annotations

import asyncio
import logging

from .asgi import ASGIApp, Message, Receive, Scope, Send, abandon, send_error
from .metrics import CLIENT_CLOSED

logger = logging.getLogger("swaparoony")


class RequestDeadlineMiddleware:
    """Answers 504 when a request (upload included) outlives timeout_s, and 500 when the app raised."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, tracking_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            abandon(task)
            logger.warning("%s %s: no answer after %s s; answered 504", scope.get("method"), scope.get("path"), self.timeout_s)
            if not started:
                await send_error(send, 504, f"The request took longer than {self.timeout_s:g} seconds and was stopped; "
                                 "try again, with a smaller photo or fewer destinations.", "timeout")
            return
        # A task that ended cancelled without being told to was handed a bare CancelledError by a library.
        failure = asyncio.CancelledError() if task.cancelled() else task.exception()
        if failure is not None:
            logger.error("%s %s failed: %r", scope.get("method"), scope.get("path"), failure, exc_info=failure)
            if not started:
                await send_error(send, 500, "The server failed to process the request; the log says why.", "internal_error")
        elif not started:  # only a request whose client hung up is let go unanswered
            await send_error(send, CLIENT_CLOSED, "The client closed the connection before its answer.", "client_closed")

