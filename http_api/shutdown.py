"""Keep the model service up on SIGTERM until every API worker has drained its requests.

BentoML's supervisor sends SIGTERM to every worker at once. An API worker stops accepting and
finishes its in-flight requests (each ends by the request deadline), but those requests still need
the model service, which would otherwise close its socket at once and turn them into 503s. So the
model service keeps serving until each API worker has said, from its shutdown hook, that it is done,
or until the longest a request may take has passed.

An API worker says so with a file, not a call: with several model workers (one per GPU) a call would reach
only one of them, and each must know. (BentoML's supervisor must also keep the sockets until the workers stop:
http_api/patches.py's sockets_outlive_workers.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("swaparoony")


class DrainMarks:
    """One empty file per drained API worker, in a directory of this server's own (its workers share a parent)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.gettempdir()) / f"swaparoony-drained-{os.getppid()}"

    def clear(self) -> None:
        """Forget marks a previous run left (a container restarted on the same emptyDir /tmp, as the same PID)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def mark(self) -> None:
        """This API worker has answered its last request."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.directory / str(os.getpid())).touch()

    def count(self) -> int:
        """How many API workers have drained."""
        try:
            return sum(1 for _ in self.directory.iterdir())
        except FileNotFoundError:
            return 0


class CallCount:
    """Model calls answered (one per request in a batch), counted from the threads the batches run in."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self, calls: int) -> None:
        with self._lock:
            self.total += calls


def drain_on_sigterm(drained: Callable[[], bool], answered: Callable[[], int], max_drain_s: float) -> None:
    """Wrap the running server's SIGTERM handler; call from an async start-up hook. `answered` counts the model
    calls answered so far, so the last line says how many the drain served."""
    loop = asyncio.get_running_loop()
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original):
        return

    async def wait_then_exit(signum: int, answered_before: int) -> None:
        started = time.monotonic()
        while not drained() and time.monotonic() - started < max_drain_s:
            await asyncio.sleep(0.1)
        logger.info("model service: %s, after answering %d model calls since SIGTERM; shutting down",
                    "every API worker has drained" if drained() else f"gave up waiting after {max_drain_s:g} s",
                    answered() - answered_before)
        original(signum, None)

    def on_sigterm(signum: int, _frame: Any) -> None:
        logger.info("SIGTERM: serving model calls until every API worker has drained")
        before = answered()
        loop.call_soon_threadsafe(lambda: loop.create_task(wait_then_exit(signum, before)))

    signal.signal(signal.SIGTERM, on_sigterm)

