"""Admission control: bodies are received in slots of their own, and only whole requests take a working slot.

A request waits (queued, costing a socket) for a receiving slot, reads its body there within the
byte and rate bounds, then waits for a working slot with the body in hand. A slow upload therefore
holds a receiving slot for at most its body deadline and never a working one, and the bodies a
worker holds in memory are at most `max_receiving + max_active`. Past `max_queued` waiting for a
receiving slot, a request is answered 503 with Retry-After at once. A client that hangs up before its
answer abandons the request: its work is cancelled, so the engine sends no further model chunk for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from .asgi import ASGIApp, Message, Receive, Scope, Send, abandon, send_error
from .body_limit import BODY_METHODS, BodyRefused, BodyRules, ClientGone, replay
from .metrics import service_metrics

logger = logging.getLogger("swaparoony")
RETRY_AFTER_S = 5


class AdmissionMiddleware:
    """At most max_receiving bodies arriving and max_active requests worked on; max_queued waiting; 503 beyond."""

    def __init__(self, app: ASGIApp, rules: BodyRules, max_active: int, max_receiving: int, max_queued: int) -> None:
        self.app = app
        self.rules = rules
        self.max_active = max_active
        self.max_queued = max_queued
        self._receiving = asyncio.Semaphore(max_receiving)
        self._active = asyncio.Semaphore(max_active)
        self._waiting = 0
        self._gauge = service_metrics().held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            self.rules.check_declared(scope)
        except BodyRefused as exc:
            await _refuse(send, exc)
            return
        if self._receiving.locked() and self._waiting >= self.max_queued:
            await send_error(
                send, 503, f"The service is busy ({self.max_active} requests in progress and {self._waiting} waiting); "
                f"retry in {RETRY_AFTER_S} seconds.", "busy", [(b"retry-after", str(RETRY_AFTER_S).encode())],
            )
            return
        body = await self._received(scope, receive, send)
        if body is None:
            return
        try:
            with self._held("active"):
                await self._worked(scope, receive, send, body)
        finally:
            self._active.release()

    async def _worked(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        """Run the app on the body; cancel it if the client hangs up before the answer is complete."""
        answered = False

        async def tracking_send(message: Message) -> None:
            nonlocal answered
            answered = answered or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        work = asyncio.ensure_future(self.app(scope, replay(body, receive), tracking_send))
        hang_up = asyncio.ensure_future(_disconnect(receive))  # uvicorn also says so once the answer is complete
        try:
            await asyncio.wait({work, hang_up}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            hang_up.cancel()
            raise
        if work.done() or answered:
            hang_up.cancel()
            await work
            return
        abandon(work)
        logger.warning("%s %s: the client closed the connection before its answer; its work was stopped",
                       scope.get("method"), scope.get("path"))

    async def _received(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The body, read in a receiving slot, with a working slot acquired; None when the request was answered."""
        self._waiting += 1
        try:
            with self._held("queued"):
                await self._receiving.acquire()
        finally:
            self._waiting -= 1
        try:
            with self._held("receiving"):
                body = await self.rules.read(scope, receive)
            with self._held("queued"):
                await self._active.acquire()
            return body
        except BodyRefused as exc:
            logger.warning("%s %s: %s answered: %s", scope.get("method"), scope.get("path"), exc.status, exc)
            await _refuse(send, exc)
        except ClientGone as exc:
            logger.warning("%s %s: %s", scope.get("method"), scope.get("path"), exc)
        finally:
            self._receiving.release()
        return None

    @contextlib.contextmanager
    def _held(self, state: str) -> Iterator[None]:
        gauge = self._gauge.labels(state)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()


async def _disconnect(receive: Receive) -> None:
    """Returns once the connection says it is over (the body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _refuse(send: Send, exc: BodyRefused) -> None:
    """Answer and close: the rest of the body is never read."""
    await send_error(send, exc.status, str(exc), exc.code, [(b"connection", b"close")])
