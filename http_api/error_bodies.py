"""One error shape for every API: BentoML's own 4xx bodies rewritten as {"error": message, "code": short}.

BentoML answers a validation error with a list of pydantic error dicts under "detail" (its OpenAPI
document says a string) and wraps its exceptions' bodies in a one-element list. People and the
OpenAPI schema both get a plain sentence instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .routes import ErrorShape, error_shape


def readable(body: Any) -> dict[str, str] | None:
    """The rewritten body, or None when it is already in the service's shape (or not BentoML's)."""
    if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict) and "error" in body[0]:
        return {"error": str(body[0]["error"]), "code": "bad_request"}
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and "error" in body:
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ())) or 'request'}: {item.get('msg', item)}"
            for item in body["detail"] if isinstance(item, dict)
        ]
        return {"error": "; ".join(problems) or str(body["error"]), "code": "invalid_parameter"}
    return None


class ErrorBodyMiddleware:
    """Buffers only 4xx JSON responses and rewrites those in BentoML's shapes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, rewriting(send, _client_error_json, _readable_body))


class RouteErrorShapeMiddleware:
    """The original API's routes answer every error, the middlewares' included (timeouts, limits, tokens), in the
    shape their clients parse: {"detail"} for /api/v1/swap, {"success": false, "error", "detail"} for KServe's
    predict; the service's short code rides along as "code". Outermost, so it sees every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = error_shape(scope.get("path", "")) if scope["type"] == "http" else "service"
        if shape == "service":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, rewriting(send, lambda start: start["status"] >= 400,
                                                 lambda body, status: reshaped(body, status, shape)))


def rewriting(send: Send, holds: Callable[[Message], bool], rewrite: Callable[[bytes, int], bytes]) -> Send:
    """A send that holds back each response `holds` picks and sends it whole once its body is in, rewritten, with
    its content-length made true; every other response goes on as it comes."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def held_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and holds(message):
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = rewrite(b"".join(chunks), start["status"])
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    return held_send


def _client_error_json(start: Message) -> bool:
    headers = dict(start.get("headers", []))
    return 400 <= start["status"] < 500 and headers.get(b"content-type", b"").startswith(b"application/json")


def _readable_body(body: bytes, status: int) -> bytes:
    try:
        rewritten = readable(json.loads(body))
    except ValueError:
        return body
    return body if rewritten is None else json.dumps(rewritten).encode()


def reshaped(body: bytes, status: int, shape: ErrorShape) -> bytes:
    """An error body in the service's shape rewritten into the route's; any other body as it was."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict) or set(parsed) != {"error", "code"}:
        return body  # already in the route's own shape (the route answered it)
    if shape == "original":
        return json.dumps({"detail": parsed["error"], "code": parsed["code"]}).encode()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:  # a status Python does not name
        title = "Error"
    return json.dumps({"success": False, "error": title, "detail": parsed["error"], "code": parsed["code"]}).encode()
