"""The ASGI vocabulary the service's middlewares share, and the one way they answer with an error."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, status: int, error: str, code: str,
                     headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer with the service's error body, `{"error": <what to do>, "code": <short>}`."""
    await send_body(send, status, "application/json", json.dumps({"error": error, "code": code}).encode(), headers)


async def send_body(send: Send, status: int, content_type: str, body: bytes,
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer with a whole body at once."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()), *headers,
    ]})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case), or None."""
    return next((value for key, value in scope.get("headers", []) if key == name), None)


def abandon(task: asyncio.Future[None]) -> None:
    """Cancel a request's task that nobody waits for any more, and retrieve its outcome when it ends."""
    task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[None]) -> None:
    with contextlib.suppress(BaseException):  # so asyncio does not log it as never retrieved
        task.exception()
