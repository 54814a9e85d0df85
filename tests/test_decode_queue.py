"""Decode slots between clients: one client's burst never holds every slot while another waits; FIFO within one."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from swaparoony.imaging.decode_queue import CLIENT_KEY, SHARED_CLIENT, DecodeQueue


class Decodes:
    """Decodes holding their slot until the test lets each one finish, and the order they got their slots in."""

    def __init__(self, queue: DecodeQueue) -> None:
        self.queue = queue
        self.started: list[str] = []
        self.finish: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, client: str | None, name: str) -> None:
        self.finish[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._decode(client, name))

    async def _decode(self, client: str | None, name: str) -> None:
        async with self.queue.slot(client):
            self.started.append(name)
            await self.finish[name].wait()

    async def done(self, name: str) -> None:
        self.finish[name].set()
        await self.tasks[name]


def waiting(queue: DecodeQueue, client: str) -> int:
    """How many of the client's decodes wait in the queue for a slot (its waiters not yet granted or cancelled)."""
    return sum(not waiter.done() for waiter in queue._waiting.get(client, ()))


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until the state holds (a bounded number of turns, never a timed sleep)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the state never came")


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a scenario on a fresh event loop; a slot never handed on fails it instead of hanging the suite."""
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_burst_from_one_client_does_not_hold_every_slot_while_another_waits() -> None:
    async def scenario() -> None:
        decodes = Decodes(DecodeQueue(2))
        for name in ("a1", "a2", "a3", "a4"):  # four costly files from one client: two decode, two wait
            decodes.submit("a", name)
        await until(lambda: waiting(decodes.queue, "a") == 2)
        decodes.submit("b", "b1")  # another client's photo, after the burst
        await until(lambda: waiting(decodes.queue, "b") == 1)
        assert decodes.started == ["a1", "a2"]
        await decodes.done("a1")
        await until(lambda: len(decodes.started) == 3)
        assert decodes.started[2] == "b1"  # not a3: a still holds a slot and b holds none
        for name in ("a2", "b1", "a3", "a4"):
            await until(lambda: name in decodes.started)
            await decodes.done(name)
        assert decodes.started == ["a1", "a2", "b1", "a3", "a4"]  # first come first served within a client

    run(scenario)


def test_waiting_clients_take_turns() -> None:
    async def scenario() -> None:
        decodes = Decodes(DecodeQueue(1))
        decodes.submit("x", "x1")
        await until(lambda: decodes.started == ["x1"])
        for name in ("a1", "a2", "a3", "b1", "b2", "c1"):
            decodes.submit(name[0], name)
        await until(lambda: sum(waiting(decodes.queue, client) for client in "abc") == 6)
        for name in ("x1", "a1", "b1", "c1", "a2", "b2", "a3"):
            await until(lambda: name in decodes.started)
            await decodes.done(name)
        assert decodes.started == ["x1", "a1", "b1", "c1", "a2", "b2", "a3"]

    run(scenario)


def test_the_client_comes_from_the_request_context_and_defaults_to_one_shared_key() -> None:
    async def scenario() -> None:
        decodes = Decodes(DecodeQueue(1))
        decodes.submit(None, "shared1")  # no key set: the shared client
        await until(lambda: decodes.started == ["shared1"])
        decodes.submit(None, "shared2")
        decodes.submit(None, "shared3")
        for name in ("r1", "r2"):  # as the serving layer does: each request's task runs in a context with its key
            contextvars.copy_context().run(lambda: (CLIENT_KEY.set("request"), decodes.submit(None, name)))
        await until(lambda: waiting(decodes.queue, SHARED_CLIENT) == 2 and waiting(decodes.queue, "request") == 2)
        for name in ("shared1", "shared2", "r1", "shared3", "r2"):
            await until(lambda: name in decodes.started)
            await decodes.done(name)
        # Equals go in the order they came: shared2 before r1, then the shared client to the back.
        assert decodes.started == ["shared1", "shared2", "r1", "shared3", "r2"]

    run(scenario)


def test_a_cancelled_wait_takes_no_slot_and_no_slot_is_lost() -> None:
    async def scenario() -> None:
        queue = DecodeQueue(1)
        decodes = Decodes(queue)
        async with queue.slot("a"):
            for name in ("b1", "b2", "c1"):
                decodes.submit(name[0], name)
            await until(lambda: waiting(queue, "b") == 2 and waiting(queue, "c") == 1)
            decodes.tasks["b1"].cancel()  # its client went away; its task has not run since, so b1 is still queued
        await until(lambda: decodes.started == ["b2"])  # b1 skipped, and b keeps its turn
        await decodes.done("b2")
        await until(lambda: decodes.started == ["b2", "c1"])
        await decodes.done("c1")
        assert decodes.tasks["b1"].cancelled()
        async with queue.slot("a"):
            decodes.submit("d", "d1")
            await until(lambda: waiting(queue, "d") == 1)
            decodes.tasks["d1"].cancel()
            await until(lambda: decodes.tasks["d1"].done() and waiting(queue, "d") == 0)
        async with queue.slot("e"):  # the one slot is free again (or this would wait for ever)
            assert decodes.started == ["b2", "c1"]

    run(scenario)


def test_a_slot_granted_to_a_task_cancelled_before_it_ran_is_passed_on() -> None:
    async def scenario() -> None:
        queue = DecodeQueue(1)
        decodes = Decodes(queue)
        async with queue.slot("a"):
            decodes.submit("b", "b1")
            decodes.submit("c", "c1")
            await until(lambda: waiting(queue, "b") == waiting(queue, "c") == 1)
        decodes.tasks["b1"].cancel()  # the slot is b1's now, and its task has not run since: no await in between
        await until(lambda: decodes.started == ["c1"])
        await decodes.done("c1")
        assert decodes.tasks["b1"].cancelled()
        async with queue.slot("d"):
            assert waiting(queue, "d") == 0

    run(scenario)
