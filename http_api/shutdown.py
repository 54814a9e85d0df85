"""Delay the model service's exit on SIGTERM until the API service has stopped calling it.

BentoML's supervisor stops every service at once. The API service drains its in-flight requests,
but those still need the model service, which would otherwise close its socket immediately and
turn them into 503s. So the model service keeps serving until model calls have been idle for a
moment (bounded well inside the supervisor's 30 s grace period), then shuts down as usual.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("swaparoony")

IDLE_S = 2.0
MAX_DRAIN_S = 15.0


def drain_on_sigterm(last_call: Callable[[], float]) -> None:
    """Wrap the running server's SIGTERM handler; call from an async start-up hook."""
    loop = asyncio.get_running_loop()
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original):
        return

    async def wait_then_exit(signum: int) -> None:
        started = time.monotonic()
        while time.monotonic() - max(last_call(), started) < IDLE_S and time.monotonic() - started < MAX_DRAIN_S:
            await asyncio.sleep(0.2)
        logger.info("model service idle; shutting down")
        original(signum, None)

    def on_sigterm(signum: int, _frame: Any) -> None:
        logger.info("SIGTERM: serving model calls until the API service has drained")
        loop.call_soon_threadsafe(lambda: loop.create_task(wait_then_exit(signum)))

    signal.signal(signal.SIGTERM, on_sigterm)


def keep_sockets_until_workers_stop() -> None:
    """Make BentoML's supervisor delete its inter-service sockets after, not before, stopping workers.

    bentoml 1.4's Arbiter.stop() runs its exit stack, which removes the Unix-socket directory the
    services talk through, before circus stops the workers; a draining API worker then cannot open a
    connection to the model service. Runs in the `bentoml serve` process, which imports service.py.
    """
    import atexit

    from bentoml._internal.utils import circus as bentoml_circus
    from circus.arbiter import Arbiter as CircusArbiter

    arbiter_cls = bentoml_circus.Arbiter
    if getattr(arbiter_cls.stop, "keeps_sockets", False):
        return

    def stop(self: Any) -> Any:
        atexit.register(self.exit_stack.close)
        future = CircusArbiter.stop(self)
        future.add_done_callback(lambda _: self.exit_stack.close())
        return future

    stop.keeps_sockets = True  # type: ignore[attr-defined]
    arbiter_cls.stop = stop
