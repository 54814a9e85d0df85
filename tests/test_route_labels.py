"""Route labels: the service's routes by template, mounted apps and FastAPI's included routers included, and
every other path as one label."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from http_api.route_labels import UNKNOWN, RouteLabels


def hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


def labels(tmp_path: Path) -> RouteLabels:
    """BentoML's shape: its own routes, static files, and an app mounted at the root with an included router."""
    mounted = FastAPI()
    mounted.add_api_route("/api/v1/swap", hello, methods=["POST"])
    operators = APIRouter()
    operators.add_api_route("/destinations/{name}", hello, methods=["PUT", "DELETE"])
    mounted.include_router(operators)
    return RouteLabels([Route("/swap", hello, methods=["POST"]), Route("/destinations", hello, methods=["POST"]),
                        Mount("/static_content", StaticFiles(directory=tmp_path)), Mount("/", mounted)])


def test_routes_are_labelled_by_their_template(tmp_path: Path) -> None:
    routes = labels(tmp_path)
    assert routes.label("/swap") == "/swap"
    assert routes.label("/destinations") == "/destinations"
    assert routes.label("/destinations/anyone") == "/destinations/{name}"
    assert routes.label("/api/v1/swap") == "/api/v1/swap"
    assert routes.label("/static_content/a/b.css") == "/static_content/{path}"


def test_every_other_path_is_one_label(tmp_path: Path) -> None:
    routes = labels(tmp_path)
    assert {routes.label(path) for path in ("/", "/x", "/swap/", "/destinations/a/b", "/api/v1", "/%00")} == {UNKNOWN}
