"""Swaparoony's own Prometheus series, beside BentoML's generic ones on /metrics.

Created once per worker process, after BentoML has set PROMETHEUS_MULTIPROC_DIR, so every worker
writes to the shared directory /metrics reads.
"""

from __future__ import annotations

import functools
import json

from prometheus_client import Counter, Gauge, Histogram

import swaparoony

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .routes import COUNTED

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CLIENT_CLOSED = 499


class ServiceMetrics:
    """The series, and the engine's Telemetry on top of them."""

    def __init__(self) -> None:
        self.stage_seconds = Histogram("swaparoony_stage_seconds", "Time a request spent in each stage of the engine.",
                                       ["stage"], buckets=SECONDS)
        self.requests = Counter("swaparoony_requests_total", "Answered API requests by route, status and error code "
                                "(ok for successes).", ["route", "status", "code"])
        self.faces = Histogram("swaparoony_faces_found", "Faces found per upload.", buckets=(0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50))
        self.upload_bytes = Histogram("swaparoony_upload_bytes", "Size of each upload.",
                                      buckets=(50e3, 100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 20e6))
        self.frames = Histogram("swaparoony_frames_swapped", "Frames of moving destinations (clips) swapped per request.",
                                buckets=(1, 12, 24, 36, 60, 120, 240, 480, 1000))
        self.held = Gauge("swaparoony_requests_held", "Requests this worker holds, by state (active or queued).", ["state"],
                          multiprocess_mode="livesum")
        self.model_items = Counter("swaparoony_model_items_total", "Items each model ran (faces, canvases, tiles).",
                                   ["model"])
        self.model_calls = Counter("swaparoony_model_calls_total", "ONNX Runtime session calls per model: one per "
                                   "batch where the batch axis is free, one per item otherwise.", ["model"])
        Gauge("swaparoony_info", "The running Swaparoony version.", ["version"],
              multiprocess_mode="max").labels(swaparoony.__version__).set(1)

    def stage(self, name: str, seconds: float) -> None:
        self.stage_seconds.labels(name).observe(seconds)

    def faces_found(self, count: int) -> None:
        self.faces.observe(count)

    def upload(self, size: int) -> None:
        self.upload_bytes.observe(size)

    def frames_swapped(self, count: int) -> None:
        self.frames.observe(count)

    def model_run(self, model: str, items: int, calls: int) -> None:
        self.model_items.labels(model).inc(items)
        self.model_calls.labels(model).inc(calls)


@functools.cache
def service_metrics() -> ServiceMetrics:
    """This process's metrics (Prometheus refuses to register a series twice)."""
    return ServiceMetrics()


class OutcomeMiddleware:
    """Counts every answered API request by route, status and, for an error, its short code."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("path", "")
        if scope["type"] != "http" or route not in COUNTED:
            await self.app(scope, receive, send)
            return
        status, code = 0, "ok"

        async def watching_send(message: Message) -> None:
            nonlocal status, code
            if message["type"] == "http.response.start":
                status = message["status"]
                code = "ok" if status < 400 else "error"
            elif code == "error" and message.get("body"):
                code = _code(message["body"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            if not status:  # nothing was sent: only a client gone mid-upload is left unanswered (nginx's 499)
                status, code = CLIENT_CLOSED, "client_closed"
            service_metrics().requests.labels(route, str(status), code).inc()


def _code(body: bytes) -> str:
    """The error body's short code: `code` in the service's shape, `error` in the original API's."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "error"
    if isinstance(parsed, dict):
        return str(parsed.get("code") or parsed.get("error") or "error")[:40]
    return "error"
