"""Each patch in http_api/patches.py against what it patches: these fail when an upgrade of bentoml, uvicorn,
circus or Starlette changes the piece a patch replaces or the way it is reached, not when the service sets its
own values."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from _bentoml_impl import serde
from _bentoml_impl.server import app as bentoml_app
from _bentoml_impl.server import serving as bentoml_serving
from _bentoml_impl.worker import service as bentoml_worker
from bentoml._internal.server import http_app
from bentoml._internal.server.http import instruments
from bentoml._internal.utils import circus as bentoml_circus
from circus.arbiter import Arbiter as CircusArbiter
from circus.client import CircusClient
from starlette.applications import Starlette
from starlette.formparsers import MultiPartParser
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn import config as uvicorn_config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from http_api import patches
from http_api.framing import FramingLimits, FramingProtocol
from http_api.request_log import OneLineClientErrors
from http_api.request_parsing import StrictJSONSerde, StrictMultipartSerde
from http_api.route_labels import UNKNOWN
from swaparoony.settings import Settings

LIMITS = FramingLimits(header_timeout_s=0.3, max_request_line_bytes=256, max_header_line_bytes=256, max_headers=8,
                       max_header_bytes=1024, max_connections=2)


def test_the_installed_versions_are_those_the_patches_were_written_against() -> None:
    patches.check_versions()  # on an upgrade: check each patch below, then update WRITTEN_AGAINST


def test_start_up_refuses_another_version_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "installed_version", lambda package: "9.9" if package == "circus" else
                        patches.WRITTEN_AGAINST[package])
    with pytest.raises(patches.UnsupportedVersion, match=r"circus 9\.9 is installed.*kantoku==0\.18\.3"):
        patches.install(mock.Mock())


# bounded_http_framing: uvicorn's "auto" protocol, reached by name through HTTP_PROTOCOLS when BentoML's worker
# builds its Config; FramingProtocol keeps working on top of uvicorn's httptools protocol.

def test_auto_is_the_httptools_protocol_and_config_load_looks_it_up_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    monkeypatch.setitem(uvicorn_config.HTTP_PROTOCOLS, "auto", "uvicorn.protocols.http.auto:AutoHTTPProtocol")
    config = uvicorn_config.Config(app=app, log_config=None)
    config.load()
    assert config.http == "auto" and config.http_protocol_class is HttpToolsProtocol
    monkeypatch.setitem(uvicorn_config.HTTP_PROTOCOLS, "auto", "http_api.framing:FramingProtocol")
    config = uvicorn_config.Config(app=app, log_config=None)
    config.load()
    assert config.http_protocol_class is FramingProtocol


def test_bentoml_workers_load_the_service_before_building_a_config_with_the_default_protocol() -> None:
    source = inspect.getsource(bentoml_worker.main.callback)
    config_call = re.search(r"uvicorn\.Config\((.*?)\n    \)", source, re.S)
    assert config_call is not None and "http=" not in config_call.group(1)
    assert source.index("service = load(") < source.index("uvicorn.Config(")


def hello(_: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def serve_framed(test: Callable[[int], Any]) -> Any:
    """Run `test(port)` against FramingProtocol on uvicorn's own machinery, on a real loopback socket."""
    config = uvicorn_config.Config(app=Starlette(routes=[Route("/", hello)]), log_config=None, lifespan="off")
    config.load()
    state = ServerState()
    server = await asyncio.get_running_loop().create_server(lambda: FramingProtocol(config, state, {}), "127.0.0.1", 0)
    try:
        return await asyncio.wait_for(test(server.sockets[0].getsockname()[1]), 10)
    finally:
        server.close()


async def exchange(port: int, request: bytes) -> bytes:
    """Everything the server sends for `request` until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await reader.read()
    finally:
        writer.close()


def test_the_framing_protocol_serves_on_uvicorns_httptools_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FramingProtocol, "limits", LIMITS)

    async def test(port: int) -> list[bytes]:
        two = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        return [await exchange(port, two),
                await exchange(port, b"GET / HTTP/1.1\r\n" + b"X: b\r\n" * 9 + b"\r\n"),
                await exchange(port, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n"),
                await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n"),
                await exchange(port, b"")]

    served, too_many, too_long, too_slow, nothing = asyncio.run(serve_framed(test))
    assert served.count(b"HTTP/1.1 200 OK") == 2 and served.endswith(b"hello")
    assert too_many.startswith(b"HTTP/1.1 431 ") and b'"code": "headers_too_large"' in too_many
    assert too_long.startswith(b"HTTP/1.1 414 ") and b"connection: close" in too_long
    assert too_slow.startswith(b"HTTP/1.1 408 ")
    assert nothing == b""


def test_the_framing_protocol_closes_connections_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FramingProtocol, "limits", LIMITS)

    async def test(port: int) -> tuple[bytes, float]:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(LIMITS.max_connections)]
        started = time.monotonic()
        extra = await exchange(port, b"")
        for _, writer in held:
            writer.close()
        return extra, time.monotonic() - started

    extra, seconds = asyncio.run(serve_framed(test))
    assert extra == b"" and seconds < LIMITS.header_timeout_s


# private_supervisor: the function every BentoML server start looks up in bentoml._internal.utils.circus.

def test_bentoml_binds_its_supervisor_to_tcp_through_create_standalone_arbiter() -> None:
    original = getattr(bentoml_circus.create_standalone_arbiter, "replaces", bentoml_circus.create_standalone_arbiter)
    assert list(inspect.signature(original).parameters) == ["watchers", "threaded", "kwargs"]
    source = inspect.getsource(original)
    assert 'endpoint=f"tcp://127.0.0.1:' in source and 'pubsub_endpoint=f"tcp://127.0.0.1:' in source
    assert "from bentoml._internal.utils.circus import create_standalone_arbiter" in inspect.getsource(
        bentoml_serving.serve_http)


def test_the_private_arbiter_is_driven_over_unix_sockets_in_a_0700_directory() -> None:
    arbiter = patches.private_arbiter([], threaded=True)
    directory = Path(arbiter.endpoint.removeprefix("ipc://")).parent
    assert arbiter.pubsub_endpoint == f"ipc://{directory}/events"
    assert directory.stat().st_mode & 0o777 == 0o700
    arbiter.start()
    try:
        client = CircusClient(endpoint=arbiter.endpoint, timeout=10)
        assert client.call({"command": "list", "properties": {}})["status"] == "ok"
        client.stop()
    finally:
        arbiter.stop()
    assert not directory.exists()


# bounded_metric_labels: BentoML's middleware labels by scope["path"] and passes the scope it gets to the app.

def test_bentoml_takes_its_metrics_middleware_from_the_instruments_module_when_building_an_app() -> None:
    source = inspect.getsource(bentoml_app.ServiceAppFactory.middlewares.fget)
    assert re.search(r"from bentoml\._internal\.server\.http\.instruments import \(\s*RunnerTrafficMetricsMiddleware",
                     source)
    call = inspect.getsource(bentoml_metrics_class().__call__)
    assert 'endpoint = scope["path"]' in call and "await self.app(scope, wrapped_receive, wrapped_send)" in call


def bentoml_metrics_class() -> type:
    cls = instruments.RunnerTrafficMetricsMiddleware
    return cls.__bases__[0] if getattr(cls, "labels_by_route", False) else cls


def test_the_route_labelled_middleware_labels_by_route_and_passes_the_request_on() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = patches.route_labelled(bentoml_metrics_class())(app, namespace="test")
    middleware._is_setup = True  # its Prometheus series, as mocks: what matters is the labels they are given
    for name in ("metrics_request_total", "metrics_request_duration", "metrics_request_in_progress",
                 "metrics_last_request_timestamp"):
        setattr(middleware, name, mock.MagicMock())
    routes = Starlette(routes=[Route("/items/{name}", hello), Route("/swap", hello)])

    async def send(_: Any) -> None: ...

    for path in ("/made-up", "/items/x", "/swap"):
        scope = {"type": "http", "path": path, "app": routes}
        asyncio.run(middleware(scope, mock.AsyncMock(), send))
        assert seen[-1] is scope
    labels = [call.kwargs["endpoint"] for call in middleware.metrics_request_total.labels.call_args_list]
    assert labels == [UNKNOWN, "/items/{name}", "/swap"]


# sockets_outlive_workers: BentoML's Arbiter.stop closes the exit stack (the sockets' directory) before circus's stop.

def test_bentoml_removes_its_sockets_before_circus_stops_the_workers() -> None:
    original = getattr(bentoml_circus.Arbiter.stop, "replaces", bentoml_circus.Arbiter.stop)
    source = inspect.getsource(original)
    assert source.index("self.exit_stack.__exit__") < source.index("super().stop()")
    assert bentoml_circus.Arbiter.__mro__[1] is CircusArbiter
    assert "yield self._stop_watchers(" in inspect.getsource(CircusArbiter.stop)  # a coroutine: stop() is a future


def test_the_patched_stop_removes_the_sockets_once_the_workers_have_stopped() -> None:
    patches.sockets_outlive_workers()
    arbiter = patches.private_arbiter([], threaded=True)
    directory = Path(arbiter.endpoint.removeprefix("ipc://")).parent
    removed_after_stop: list[bool] = []
    arbiter.exit_stack.callback(lambda: removed_after_stop.append(arbiter._stopping))
    arbiter.start()
    client = CircusClient(endpoint=arbiter.endpoint, timeout=10)
    assert client.call({"command": "list", "properties": {}})["status"] == "ok"  # running: its loop exists to stop
    client.stop()
    stopping = threading.Thread(target=arbiter.stop, daemon=True)  # a stop that hangs fails here, not the suite
    stopping.start()
    stopping.join(30)
    assert not stopping.is_alive(), "the arbiter did not stop within 30 s"
    assert removed_after_stop[:1] == [True] and not directory.exists()


# strict_request_parsing: BentoML picks a request's serde from ALL_SERDE by media type, at request time; Starlette
# spools file parts over spool_max_size to disk.

def test_bentoml_looks_each_requests_serde_up_in_the_module_table() -> None:
    source = inspect.getsource(bentoml_app)
    assert "from ..serde import ALL_SERDE" in source
    assert 'ALL_SERDE.get(media_type, ALL_SERDE["application/json"])()' in source
    for media_type, base in {"multipart/form-data": serde.MultipartSerde, "application/x-www-form-urlencoded":
                             serde.MultipartSerde, "application/json": serde.JSONSerde}.items():
        assert issubclass(serde.ALL_SERDE[media_type], base), media_type
    assert issubclass(StrictMultipartSerde, serde.MultipartSerde) and issubclass(StrictJSONSerde, serde.JSONSerde)
    assert inspect.signature(serde.MultipartSerde.parse_request) == inspect.signature(StrictMultipartSerde.parse_request)


def test_starlette_spools_file_parts_past_the_class_setting() -> None:
    assert "SpooledTemporaryFile(max_size=self.spool_max_size)" in inspect.getsource(MultiPartParser)


# one_line_client_errors: BentoML logs the exceptions its API wrapper answers through log_exception's logger.

def test_bentoml_logs_answered_exceptions_on_the_filtered_logger() -> None:
    assert http_app.logger.name == OneLineClientErrors.logger_name
    assert "logger.error(" in inspect.getsource(http_app.log_exception)
    patches.one_line_client_errors()
    assert any(isinstance(f, OneLineClientErrors) for f in logging.getLogger(OneLineClientErrors.logger_name).filters)


def test_bentoml_keeps_tasks_in_the_sqlite_store_its_app_and_supervisor_name() -> None:
    created = inspect.getsource(bentoml_app.ServiceAppFactory.create_instance)
    assert "self._result_store = Sqlite3Store(store_path)" in created and "from ..tasks import Sqlite3Store" in inspect.getsource(bentoml_app)
    assert "Sqlite3Store.init_db(result_file)" in inspect.getsource(bentoml_serving.server_on_deployment)
    routes = inspect.getsource(bentoml_app.ServiceAppFactory.routes.fget)
    for route in ("functools.partial(self.submit_task, name)", "self.get_status", "self.get_result", "self.retry_task",
                  "self.cancel_task"):
        assert route in routes, route
    assert list(inspect.signature(bentoml_app.ServiceAppFactory.api_endpoint_wrapper).parameters) == ["self", "name", "request"]
    # what the patched submit reads and calls on BentoML's app and store
    submit = bentoml_app.ServiceAppFactory.submit_task
    original = inspect.getsource(getattr(submit, "replaces", submit))
    assert "await self._result_store.new_entry(name, request)" in original  # the store's role the patch keeps
    assert "resp.background = BackgroundTask(self._run_task, task_id, name, request)" in original


def test_the_patched_task_routes_keep_tasks_in_memory_and_make_no_file(tmp_path: Path) -> None:
    patches.in_memory_tasks(Settings())
    factory = bentoml_app.ServiceAppFactory
    assert getattr(factory.submit_task, "in_memory", False)
    bentoml_app_store = getattr(bentoml_app, "Sqlite3Store")
    assert type(bentoml_app_store(str(tmp_path / "task_result.db"))).__name__ == "RelayedTaskStore"
    from _bentoml_impl.tasks.result import Sqlite3Store
    Sqlite3Store.init_db(str(tmp_path / "task_result.db"))
    assert list(tmp_path.iterdir()) == []
