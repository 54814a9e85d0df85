"""Every route the service answers, in one table: what it answers with, who may call it, whether it is counted.

The typed APIs in service.py, the original API in http_api/compat.py and the operator routes declare their own
paths; Serving.assemble() checks each of them is in this table, so a route added without a row fails at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Answer = Literal["json", "picture", "archive", "probe", "document"]
Access = Literal["api", "open", "operator"]
ErrorShape = Literal["service", "original", "kserve"]

MODEL_NAME = "swaparoony-face-swap"
PREDICT_PATH = f"/v1/models/{MODEL_NAME}:predict"


@dataclass(frozen=True)
class Route:
    """One path: what its success answers with, which token it needs, and the shape of its error bodies."""

    path: str
    answer: Answer
    access: Access = "api"
    errors: ErrorShape = "service"
    counted: bool = True
    """Whether swaparoony_requests_total counts it by route (the APIs people call, not probes and documents)."""


ROUTES: tuple[Route, ...] = (
    Route("/swap", "json"),
    Route("/swap_image", "picture"),
    Route("/swap_zip", "archive"),
    Route("/swap_sheet", "picture"),
    Route("/faces", "json"),
    Route("/faces_image", "picture"),
    Route("/destinations", "json"),
    Route("/destinations/{name}", "json", access="operator", counted=False),
    Route("/api/v1/swap", "json", errors="original"),
    Route(PREDICT_PATH, "json", errors="kserve"),
    Route("/api/v1/health", "probe", access="open", counted=False),
    Route(f"/v1/models/{MODEL_NAME}", "probe", access="open", counted=False),
    Route("/livez", "probe", access="open", counted=False),
    Route("/readyz", "probe", access="open", counted=False),
    Route("/healthz", "probe", access="open", counted=False),
    Route("/metrics", "probe", access="open", counted=False),
    Route("/", "document", access="open", counted=False),
    Route("/docs.json", "document", access="open", counted=False),
)
TASKS = ("/swap", "/swap_image", "/swap_zip", "/swap_sheet")
"""The APIs also offered as BentoML tasks (service.py's @bentoml.task): submit, then status, get, cancel."""
ROUTES += tuple(Route(f"{route.path}/{step}", route.answer if step == "get" else "json")
                for route in ROUTES if route.path in TASKS for step in ("submit", "status", "get", "cancel", "retry"))
BY_PATH = {route.path: route for route in ROUTES}
OPEN_PATHS = frozenset(route.path for route in ROUTES if route.access == "open")
OPEN_PREFIXES = ("/static_content/",)
"""Swagger UI's files."""
OPERATOR_PREFIX = "/destinations/"
COUNTED = frozenset(route.path for route in ROUTES if route.counted)
PICTURES = tuple(route.path for route in ROUTES if route.answer == "picture")
ARCHIVES = tuple(route.path for route in ROUTES if route.answer == "archive")


def error_shape(path: str) -> ErrorShape:
    """The error body shape clients of this path expect."""
    route = BY_PATH.get(path)
    return route.errors if route else "service"


def unlisted(paths: list[str]) -> list[str]:
    """The declared paths this table does not list."""
    return [path for path in paths if path not in BY_PATH]
