"""Every patch this package makes to BentoML, uvicorn and circus internals, installed by one call, install().

None of these has a supported setting (BentoML builds uvicorn's Config and circus's Arbiter itself, and
labels its HTTP metrics by raw path), so each patch replaces the smallest piece it can, says why, and
names the version it was written against; install() refuses any other version of those packages, and
tests/test_patches.py fails when an upgrade changes what a patch replaces. service.py calls install()
at import, which happens in the `bentoml serve` supervisor (the circus patch) and in every worker (the
HTTP protocol and the metrics label). Each patch is idempotent: BentoML may import service.py twice.
(Two older patches live beside what they serve: http_api/shutdown.py, http_api/request_parsing.py.)
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from typing import Any

from bentoml._internal.server.http import instruments
from bentoml._internal.utils import circus as bentoml_circus
from uvicorn import config as uvicorn_config

from swaparoony.settings import Settings

from . import framing
from .asgi import Receive, Scope, Send
from .route_labels import RouteLabels

WRITTEN_AGAINST = {"bentoml": "1.4.39", "uvicorn": "0.55.0", "circus": "0.18.3"}
DISTRIBUTION = {"circus": "kantoku"}  # BentoML's fork of circus, which pip installs under that name
ORIGINAL_SCOPE = "swaparoony.original_scope"


class UnsupportedVersion(RuntimeError):
    """A patched package is at a version the patches were not written against."""


def install(settings: Settings) -> None:
    """Check the patched packages' versions, then install every patch in this process."""
    check_versions()
    bounded_http_framing(settings)
    private_supervisor()
    bounded_metric_labels()


def check_versions() -> None:
    """Refuse to start on a version of a patched package that the patches were not checked against."""
    for package, expected in WRITTEN_AGAINST.items():
        installed = installed_version(package)
        if installed != expected:
            raise UnsupportedVersion(
                f"{package} {installed} is installed, but http_api/patches.py was written against {package} "
                f"{expected}: install {DISTRIBUTION.get(package, package)}=={expected}, or check each patch against "
                f"{installed} (run tests/test_patches.py) and update WRITTEN_AGAINST")


def installed_version(package: str) -> str:
    """The module's own __version__ (circus's distribution has another name)."""
    return str(importlib.import_module(package).__version__)


def bounded_http_framing(settings: Settings) -> None:
    """Serve HTTP/1.1 with http_api/framing.py's FramingProtocol, whose heads and connections are bounded.

    Written against uvicorn 0.55.0 and bentoml 1.4.39: BentoML's worker (_bentoml_impl/worker/service.py)
    builds uvicorn.Config with http="auto" after importing service.py, and Config.load() looks that name up
    in uvicorn.config.HTTP_PROTOCOLS as an import string. Also raises this worker's open-files limit so
    max_connections sockets fit.
    """
    fits = framing.fit_connections(settings.max_connections)
    framing.FramingProtocol.limits = framing.FramingLimits.of(settings, fits)
    uvicorn_config.HTTP_PROTOCOLS["auto"] = f"{framing.__name__}:{framing.FramingProtocol.__name__}"


def private_supervisor() -> None:
    """Bind BentoML's circus supervisor to Unix sockets in a private (0700) directory instead of TCP ports.

    Written against bentoml 1.4.39 and circus 0.18.3: bentoml._internal.utils.circus.create_standalone_arbiter
    binds circus's ZeroMQ control and pub/sub endpoints to tcp://127.0.0.1 ports, and circus asks for no
    credentials, so any local user could list the watchers and add one that runs a command as the server's
    user. Every caller imports the function from that module when it starts a server, so replacing it there
    is enough.
    """
    if bentoml_circus.create_standalone_arbiter is not private_arbiter:
        private_arbiter.replaces = bentoml_circus.create_standalone_arbiter  # type: ignore[attr-defined]  # for tests
        bentoml_circus.create_standalone_arbiter = private_arbiter


def private_arbiter(watchers: list[Any], *, threaded: bool = False, **kwargs: Any) -> bentoml_circus.Arbiter:
    """The arbiter exactly as BentoML builds it, but on ipc:// endpoints; its exit stack removes their directory."""
    directory = tempfile.mkdtemp(prefix="swaparoony-circus-")  # mode 0700: only this user may connect
    arbiter_cls = bentoml_circus.ThreadedArbiter if threaded else bentoml_circus.Arbiter
    arbiter = arbiter_cls(watchers, endpoint=f"ipc://{directory}/control", pubsub_endpoint=f"ipc://{directory}/events",
                          check_delay=kwargs.pop("check_delay", 10), **kwargs)
    arbiter.exit_stack.callback(shutil.rmtree, directory, ignore_errors=True)
    return arbiter


def bounded_metric_labels() -> None:
    """Label BentoML's per-request metrics by route template, with every unknown path as one value.

    Written against bentoml 1.4.39: RunnerTrafficMetricsMiddleware (bentoml/_internal/server/http/instruments.py)
    labels its series with scope["path"] as sent, so each invented path adds series to every worker's
    Prometheus files and to /metrics (20,000 paths made /metrics 76 MB and a scrape 21 s). The service's
    app (_bentoml_impl/server/app.py) imports the class from that module when it builds its middleware, so
    route_labelled's subclass in its place is enough.
    """
    if not getattr(instruments.RunnerTrafficMetricsMiddleware, "labels_by_route", False):
        setattr(instruments, "RunnerTrafficMetricsMiddleware", route_labelled(instruments.RunnerTrafficMetricsMiddleware))


def route_labelled(metrics_cls: type) -> type:
    """A subclass of BentoML's middleware that hands it a copy of the scope whose path is the route's label,
    and the app behind it the request's own scope."""

    class RouteLabelledMetrics(metrics_cls):  # type: ignore[misc, valid-type]
        labels_by_route = True

        def __init__(self, app: Any, **options: Any) -> None:
            async def with_original_scope(scope: Scope, receive: Receive, send: Send) -> None:
                await app(scope.get(ORIGINAL_SCOPE, scope), receive, send)

            super().__init__(with_original_scope, **options)
            self.route_labels: RouteLabels | None = None

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await super().__call__(scope, receive, send)
                return
            if self.route_labels is None:  # the app's routes are all in place by its first request
                self.route_labels = RouteLabels(scope["app"].routes)
            label = self.route_labels.label(scope["path"])
            labelled = scope if label == scope["path"] else {**scope, "path": label, ORIGINAL_SCOPE: scope}
            await super().__call__(labelled, receive, send)

    return RouteLabelledMetrics
