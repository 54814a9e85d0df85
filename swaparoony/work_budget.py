"""The swaps an API worker has in flight to the model service: admitted by weight, first come first served.

Counting requests let one request that asked for 512 swaps weigh what a one-face swap weighs. Here each
model call holds as many units as the swaps it sends, so the model service's memory follows the work the
workers admit. Waiters are served strictly in arrival order: a big share at the head of the queue is not
overtaken by small ones, so it cannot be starved, and a small one waits at most for the shares before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class WorkBudget:
    """A weighted, FIFO asyncio semaphore of `capacity` swaps (framework-free; one per engine)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a work budget needs a capacity of at least 1 swap, not {capacity}")
        self.capacity = capacity
        self._free = capacity
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def share(self, swaps: int) -> AsyncIterator[int]:
        """Hold `swaps` units (at most the whole capacity, so a share larger than it still runs, alone) while
        the block runs; yields the units held."""
        held = await self.acquire(swaps)
        try:
            yield held
        finally:
            self.release(held)

    async def acquire(self, swaps: int) -> int:
        """Wait for a share in turn and take it; returns the units taken, to be given to release()."""
        wanted = max(1, min(swaps, self.capacity))
        if not self._waiting and wanted <= self._free:
            self._free -= wanted
            return wanted
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, turn)
        self._waiting.append(entry)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.cancelled():  # cancelled in the queue: leave it, and let whoever it held back go
                self._waiting.remove(entry)
                self._grant()
            else:  # granted, then cancelled before it could run: give the share back
                self.release(wanted)
            raise
        return wanted

    def release(self, swaps: int) -> None:
        """Give back a share taken by acquire(), and admit the waiters it makes room for."""
        self._free += swaps
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._free:
            wanted, turn = self._waiting.popleft()
            self._free -= wanted
            turn.set_result(None)
