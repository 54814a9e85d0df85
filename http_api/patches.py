"""Every patch the service makes to BentoML, circus, uvicorn and Starlette, in one module: install() and
pin_media_types() are the only ways in.

None of these has a supported setting (BentoML builds uvicorn's Config and circus's Arbiter itself, picks
its serdes from a module table, labels its HTTP metrics by raw path and logs client errors with their
inputs), so each patch replaces the smallest piece it can, says why, and names the version it was written
against; install() refuses any other version of those packages, and tests/test_patches.py fails when an
upgrade changes what a patch replaces or how BentoML reaches it. The serving layer (http_api/serving.py)
calls install() once per process: in the `bentoml serve` supervisor (the circus patches) and in every
worker (the rest). Each patch is idempotent: BentoML may import service.py twice.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import shutil
import tempfile
from typing import Any

import bentoml
from _bentoml_impl import serde
from _bentoml_impl.server import app as bentoml_app
from _bentoml_impl.tasks import result as task_results
from bentoml._internal.server.http import instruments
from bentoml._internal.utils import circus as bentoml_circus
from circus.arbiter import Arbiter as CircusArbiter
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from uvicorn import config as uvicorn_config

from swaparoony.settings import Settings

from . import framing
from .asgi import Receive, Scope, Send
from .request_log import OneLineClientErrors
from .request_parsing import FormLimits, StrictJSONSerde, StrictMultipartSerde
from .route_labels import RouteLabels
from .task_relay import RelayedTaskStore, ask
from .task_store import Operation, TaskFull

WRITTEN_AGAINST = {"bentoml": "1.4.39", "uvicorn": "0.55.0", "circus": "0.18.3", "starlette": "1.10.0"}
DISTRIBUTION = {"circus": "kantoku"}  # BentoML's fork of circus, which pip installs under that name
ORIGINAL_SCOPE = "swaparoony.original_scope"


class UnsupportedVersion(RuntimeError):
    """A patched package is at a version the patches were not written against."""


def install(settings: Settings) -> None:
    """Check the patched packages' versions, then install every patch in this process."""
    check_versions()
    bounded_http_framing(settings)
    private_supervisor()
    sockets_outlive_workers()
    bounded_metric_labels()
    strict_request_parsing(settings)
    one_line_client_errors()
    in_memory_tasks(settings)


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

    class RouteLabelledMetrics(metrics_cls):
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


def sockets_outlive_workers() -> None:
    """Make BentoML's supervisor delete its inter-service sockets after, not before, stopping the workers.

    Written against bentoml 1.4.39 and circus 0.18.3: bentoml._internal.utils.circus.Arbiter.stop() closes its
    exit stack, which removes the Unix-socket directory the services talk through, before circus's stop() stops
    the workers; an API worker draining its requests on SIGTERM then cannot reach the model service.
    """
    arbiter_cls = bentoml_circus.Arbiter
    if getattr(arbiter_cls.stop, "keeps_sockets", False):
        return

    def stop(self: Any) -> Any:
        atexit.register(self.exit_stack.close)
        future = CircusArbiter.stop(self)
        future.add_done_callback(lambda _: self.exit_stack.close())
        return future

    setattr(stop, "keeps_sockets", True)
    setattr(stop, "replaces", arbiter_cls.stop)  # for tests/test_patches.py
    setattr(arbiter_cls, "stop", stop)


def strict_request_parsing(settings: Settings) -> None:
    """Parse every request with http_api/request_parsing.py's serdes, and keep every file part in memory.

    Written against bentoml 1.4.39 and starlette 1.10.0: BentoML's app (_bentoml_impl/server/app.py) looks each
    request's serde up by media type in _bentoml_impl.serde.ALL_SERDE, whose stock classes turn form errors into
    500s, run json.loads on every text field and fetch a URL given for a file. Starlette's MultiPartParser
    spools a file part over spool_max_size (1 MiB) to a temporary file, and faces must never touch the disk:
    the admission middleware keeps every body under max_body_bytes, so no part is spooled at that size.
    """
    limits = FormLimits(parts=settings.max_form_parts, field_bytes=settings.max_form_field_bytes)
    bounded = type("BoundedMultipartSerde", (StrictMultipartSerde,), {"limits": limits})
    MultiPartParser.spool_max_size = settings.max_body_bytes
    table: dict[str, Any] = serde.ALL_SERDE  # declared a Mapping, built as a dict
    table["multipart/form-data"] = bounded
    table["application/x-www-form-urlencoded"] = bounded
    table["application/json"] = StrictJSONSerde


def in_memory_tasks(settings: Settings) -> None:
    """Keep BentoML's tasks in the API worker's memory (http_api/task_store.py), never in its SQLite file.

    Written against bentoml 1.4.39: the supervisor makes the file (server_on_deployment calls
    Sqlite3Store.init_db) and each worker's app opens it (ServiceAppFactory.create_instance calls app.py's
    Sqlite3Store); its submit_task stores the request body for /retry and runs the task as the submit response's
    background (inside the submit request, so its middleware, deadline included, held on for the whole task); its
    cancel_task only marks the row. Here init_db makes nothing, the app gets a RelayedTaskStore, and the task
    routes are replaced: submit reads the body (within the upload limits) and starts the task apart from the
    request, cancel stops it, /status, /get and /cancel reach the worker holding it, /retry says to submit again.
    """
    factory = bentoml_app.ServiceAppFactory
    if getattr(factory.submit_task, "in_memory", False):
        return

    def memory_store(_: str) -> RelayedTaskStore:
        owner = str(bentoml.server_context.worker_index or 0)
        return RelayedTaskStore(settings.task_result_s, settings.task_deadline_s, settings.max_tasks, owner,
                                max(1, settings.max_active_requests // 4))

    async def submit_task(self: Any, name: str, request: Request) -> Response:
        await request.body()  # read now: the task parses it after this call has answered
        try:
            task_id = await self._result_store.new_entry(name, request)
        except TaskFull as exc:
            answer: Response = JSONResponse({"error": str(exc), "code": "too_many_tasks"}, status_code=429)
        else:
            self._result_store.start(task_id, self.api_endpoint_wrapper, request)
            answer = JSONResponse({"task_id": task_id, "status": "in_progress"})
        self._add_response_headers(answer)
        return answer

    def asked(operation: Operation) -> Any:
        async def route(self: Any, request: Request) -> Response:
            task_id = request.query_params.get("task_id")
            answer: Response
            if not task_id:
                answer = JSONResponse({"error": "task_id is required", "code": "invalid_parameter"}, status_code=400)
            else:
                answer = (await ask(self._result_store, operation, task_id)).response()
            self._add_response_headers(answer)
            return answer
        return route

    async def retry_task(self: Any, request: Request) -> Response:
        answer = JSONResponse({"error": "A task's upload is not kept (faces are personal data), so it cannot be "
                                        "retried: submit the request again.", "code": "retry_not_offered"},
                              status_code=400)
        self._add_response_headers(answer)
        return answer

    setattr(submit_task, "in_memory", True)
    setattr(submit_task, "replaces", factory.submit_task)  # for tests/test_patches.py
    setattr(task_results.Sqlite3Store, "init_db", classmethod(lambda cls, db_file: None))
    setattr(bentoml_app, "Sqlite3Store", memory_store)
    setattr(factory, "submit_task", submit_task)
    setattr(factory, "get_status", asked("status"))
    setattr(factory, "get_result", asked("get"))
    setattr(factory, "cancel_task", asked("cancel"))
    setattr(factory, "retry_task", retry_task)


def one_line_client_errors() -> None:
    """Log a malformed request as one WARNING line without its inputs (http_api/request_log.py's filter).

    Written against bentoml 1.4.39: its API wrapper logs every exception it answers, client errors included,
    with log_exception() on the logger named request_log.BENTOML_LOGGER, at ERROR with the traceback and
    pydantic's input_value (a person's form field).
    """
    logger = logging.getLogger(OneLineClientErrors.logger_name)
    if not any(isinstance(f, OneLineClientErrors) for f in logger.filters):
        logger.addFilter(OneLineClientErrors())


def pin_media_types(*services: Any) -> None:
    """Set each API's output media type to the one BentoML computes, so it is computed once, here.

    Written against bentoml 1.4.39: it answers every call of an API whose output is a plain type (the model
    service's lists of arrays) by asking its output descriptor for a media type, and IOMixin.mime_type() builds
    the type's whole JSON schema with pydantic each time (8% of the model service's CPU per request under load,
    py-spy) unless the descriptor's media_type is set.
    """
    for service in services:
        for api in service.apis.values():
            spec = api.output_spec
            if spec.media_type is None:
                spec.media_type = spec.mime_type()
