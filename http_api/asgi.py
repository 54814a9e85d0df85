"""The ASGI vocabulary the service's middlewares share, and the one way they answer with an error."""

from __future__ import annotations

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
    body = json.dumps({"error": error, "code": code}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers,
    ]})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case), or None."""
    return next((value for key, value in scope.get("headers", []) if key == name), None)
