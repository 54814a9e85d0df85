"""The route table: every route the service declares is in it, and each route's errors come in its clients' shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import service
from http_api.asgi import send_error
from http_api.error_bodies import RouteErrorShapeMiddleware
from http_api.routes import BY_PATH, PREDICT_PATH, unlisted
from http_api.serving import paths


def test_every_declared_route_is_in_the_table() -> None:
    declared = [api.route for api in service.Swaparoony.apis.values()]
    declared += paths(service.serving.original_api.routes)
    assert declared and unlisted(declared) == []
    assert {"/swap", "/api/v1/swap", PREDICT_PATH, "/destinations/{name}"} <= set(declared)


def test_a_route_missing_from_the_table_stops_start_up() -> None:
    class Unlisted:
        apis = {"x": type("Api", (), {"route": "/not_in_the_table"})()}

    with pytest.raises(RuntimeError, match="/not_in_the_table"):
        service.serving.assemble(service.FaceModels, Unlisted)


def answered(path: str, status: int, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """What a client of `path` receives when the app behind the middleware answers an error."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if body is None:
            await send_error(send, status, "The request took longer than 3 seconds and was stopped.", "timeout")
        else:
            encoded = json.dumps(body).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode())]})
            await send({"type": "http.response.body", "body": encoded})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(RouteErrorShapeMiddleware(app)({"type": "http", "path": path}, None, send))
    start, content = sent
    length = dict(start["headers"])[b"content-length"]
    assert int(length) == len(content["body"])
    return start["status"], json.loads(content["body"])


def test_kserve_predict_answers_a_timeout_in_its_documented_shape() -> None:
    status, body = answered(PREDICT_PATH, 504)
    assert status == 504
    assert body == {"success": False, "error": "Gateway Timeout", "code": "timeout",
                    "detail": "The request took longer than 3 seconds and was stopped."}


def test_the_original_swap_answers_middleware_errors_with_detail() -> None:
    assert answered("/api/v1/swap", 413) == (413, {"detail": "The request took longer than 3 seconds and was stopped.",
                                                  "code": "timeout"})


def test_the_services_own_routes_and_the_routes_own_bodies_are_left_alone() -> None:
    assert answered("/swap", 504)[1] == {"error": "The request took longer than 3 seconds and was stopped.",
                                         "code": "timeout"}
    own = {"success": False, "error": "Bad Request", "detail": "No face was found in the upload."}
    assert answered(PREDICT_PATH, 400, own) == (400, own)
    assert BY_PATH[PREDICT_PATH].errors == "kserve" and BY_PATH["/api/v1/swap"].errors == "original"
