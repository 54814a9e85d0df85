"""A task held by another API worker of this replica, answered by that worker over a local socket.

BentoML's API workers share one listening socket, so a client's /status, /get or /cancel lands on any of them,
while a task lives in the memory of the worker that took it (task_store.py). Each worker listens on an abstract
Unix socket (no file, never outside the pod) named by its group (the supervisor's pid, every worker's parent) and its
index, which begins every task id it gives out; a worker asked about another's task passes the question on and its
answer back, and answers only processes of its own user.
Replicas do not share tasks: route a client to one replica (see the README's "Tasks").
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct

from .task_store import Answer, MemoryTaskStore, Operation, _error

logger = logging.getLogger("swaparoony")
TIMEOUT_S = 5.0
"""A worker's answer about its own task is a dictionary lookup; this only bounds a worker that hangs."""
PEER = struct.Struct("3i")
"""SO_PEERCRED's answer: pid, uid, gid."""


def address(owner: str) -> str:
    """The abstract socket of the worker whose task ids begin with `owner`, among its parent's workers."""
    return f"\0swaparoony-tasks-{os.getppid()}-{owner}"


async def serve(store: MemoryTaskStore) -> asyncio.AbstractServer:
    """Answer the other workers' questions about this worker's tasks, until the server is closed."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not _same_user(writer.get_extra_info("socket")):
            writer.close()
            return
        try:
            operation, task_id = json.loads(await reader.readline())
            _write(writer, await store.answer(operation, task_id))
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            logger.warning("a task question from another worker went unanswered: %s", exc)
        finally:
            writer.close()

    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(address(store.owner))  # made here: uvloop refuses an abstract name given as a path (EINVAL)
    return await asyncio.start_unix_server(answer, sock=listening)


async def ask(store: MemoryTaskStore, operation: Operation, task_id: str) -> Answer:
    """This worker's answer for its own task, or the owning worker's for another's."""
    if store.owns(task_id):
        return await store.answer(operation, task_id)
    owner = task_id.partition("-")[0]
    if not owner.isdigit():
        return await store.answer(operation, task_id)  # not one of ours: not found
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(sock=await _connected(address(owner)))
            writer.write(json.dumps([operation, task_id]).encode() + b"\n")
            await writer.drain()
            answer = await _read(reader)
            writer.close()
            return answer
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        logger.warning("worker %s did not answer for its task: %s", owner, exc)
        return _error("No such task on this replica: the worker that took it has gone, or the request reached "
                      "another replica (see the README's \"Tasks\").", "task_not_found", 404)


async def _connected(name: str) -> socket.socket:
    """A socket connected to a local listener without blocking the event loop (a worker whose backlog is full makes a
    blocking connect wait), for the event loop to take over."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(connection, name)
    except BaseException:
        connection.close()
        raise
    return connection


def _same_user(connection: socket.socket | None) -> bool:
    """Whether the process at the other end runs as this one's user (the relay answers no one else)."""
    if connection is None:
        return False
    _, uid, _ = PEER.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size))
    return uid == os.getuid()


def _write(writer: asyncio.StreamWriter, answer: Answer) -> None:
    head = json.dumps({"status": answer.status_code,
                       "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in answer.headers]}).encode()
    writer.write(struct.pack(">II", len(head), len(answer.body)) + head + answer.body)


async def _read(reader: asyncio.StreamReader) -> Answer:
    sizes = await reader.readexactly(8)
    head_size, body_size = struct.unpack(">II", sizes)
    head = json.loads(await reader.readexactly(head_size))
    body = await reader.readexactly(body_size)
    return Answer(head["status"], body, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head["headers"]])


class RelayedTaskStore(MemoryTaskStore):
    """The store BentoML's app gets: this worker's tasks, and its socket for the other workers' questions."""

    server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> RelayedTaskStore:
        self.server = await serve(self)
        return self

    async def __aexit__(self, *details: object) -> None:
        if self.server is not None:
            self.server.close()
        await super().__aexit__(*details)
