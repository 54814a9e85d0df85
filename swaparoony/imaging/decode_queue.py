"""Decode slots shared fairly between clients: round-robin between them, first come first served within each.

With one queue for everyone, a client that sends a burst of costly files holds every decode process in
turn while another client's single photo waits behind the whole burst. Here a free slot goes to the
waiting client that holds the fewest slots, the longest-waiting such client first, so one client's
queued files cannot hold every decoder while another client waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

SHARED_CLIENT = "shared"
"""The key of work no request set one for (the gallery's own loads, tests, the CLI): one client among the others."""
CLIENT_KEY: ContextVar[str] = ContextVar("swaparoony_decode_client", default=SHARED_CLIENT)
"""Who the current request's decodes are for; the serving layer sets it per request (a context variable, so each
request task sees its own and threads started from it inherit it)."""


class DecodeQueue:
    """`slots` decode slots, handed out in turn between clients; use as `async with queue.slot(): ...`."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        """Clients with waiters, in turn order: a client served goes to the back."""

    @asynccontextmanager
    async def slot(self, client: str | None = None) -> AsyncIterator[None]:
        """Hold one decode slot for `client` (default: CLIENT_KEY's value) while the block runs."""
        key = CLIENT_KEY.get() if client is None else client
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, client: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            self._held[client] = self._held.get(client, 0) + 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled before it ran: pass the slot on
                self._release(client)
            else:
                self._forget(client, waiter)
            raise

    def _release(self, client: str) -> None:
        self._held[client] -= 1
        if not self._held[client]:
            del self._held[client]
        while self._waiting:
            turn = min(self._waiting, key=lambda key: self._held.get(key, 0))  # the first of equals: turn order
            queued = self._waiting[turn]
            waiter = queued.popleft()
            if waiter.done():  # cancelled, its task not yet back to take it out: the client keeps its place
                if not queued:
                    del self._waiting[turn]
                continue
            del self._waiting[turn]
            if queued:
                self._waiting[turn] = queued  # to the back of the turn order
            self._held[turn] = self._held.get(turn, 0) + 1
            waiter.set_result(None)
            return
        self._free += 1

    def _forget(self, client: str, waiter: asyncio.Future[None]) -> None:
        queued = self._waiting.get(client)
        if queued is not None and waiter in queued:
            queued.remove(waiter)
            if not queued:
                del self._waiting[client]
