"""The route a request path belongs to, as a metric label: the service's own routes by their template, and
every other path as one value, so a client cannot add a Prometheus series per path it invents."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

UNKNOWN = "/_unknown"


class RouteLabels:
    """An app's routes read once (FastAPI's included routers as the routes they include); label() per request."""

    def __init__(self, routes: Sequence[Any], prefix: str = "") -> None:
        self.routes: list[tuple[re.Pattern[str], str, RouteLabels | None]] = []
        for route in iter_route_contexts(routes):
            pattern = getattr(route, "path_regex", None)
            if pattern is None:  # a host route: none here
                continue
            inner = getattr(route, "routes", None)
            if isinstance(route.original_route, Mount) and inner:
                self.routes.append((pattern, "", RouteLabels(inner, prefix + str(route.path))))
            else:  # a route, or a mount without routes of its own, such as static files
                self.routes.append((pattern, prefix + str(route.path_format), None))

    def label(self, path: str) -> str:
        """The template of the route `path` matches (`/destinations/{name}`, `/static_content/{path}`), whatever
        the method; UNKNOWN when none does."""
        for pattern, template, mounted in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            if mounted is None:
                return template
            label = mounted.label("/" + match.group("path"))
            if label != UNKNOWN:
                return label
        return UNKNOWN
