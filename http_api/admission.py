"""Admission control: a worker holds a bounded number of requests, queues a bounded number, refuses the rest.

A request is admitted before its body is read, so a queued request costs a socket and nothing
else; an active one holds its upload, a decoded frame and its results. Bounding the active ones
bounds the worker's memory; bounding the queue turns a flood into quick 503s with Retry-After
instead of minutes of waiting.
"""

from __future__ import annotations

import asyncio

from .asgi import ASGIApp, Receive, Scope, Send, send_error
from .body_limit import BODY_METHODS
from .metrics import service_metrics

RETRY_AFTER_S = 5


class AdmissionMiddleware:
    """At most max_active requests with a body at a time, max_queued waiting; 503 with Retry-After beyond."""

    def __init__(self, app: ASGIApp, max_active: int, max_queued: int) -> None:
        self.app = app
        self.max_active = max_active
        self.max_queued = max_queued
        self._slots = asyncio.Semaphore(max_active)
        self._queued = 0
        self._gauge = service_metrics().held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if self._slots.locked() and self._queued >= self.max_queued:
            await send_error(
                send, 503, f"The service is busy ({self.max_active} requests in progress and {self._queued} waiting); "
                f"retry in {RETRY_AFTER_S} seconds.", "busy", [(b"retry-after", str(RETRY_AFTER_S).encode())],
            )
            return
        self._queued += 1
        self._gauge.labels("queued").inc()
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1
            self._gauge.labels("queued").dec()
        self._gauge.labels("active").inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()
            self._gauge.labels("active").dec()
