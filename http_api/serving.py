"""The serving layer's one owner: the settings, the engine's life cycle and readiness, the middleware stack, and
the original and operator routes, built once per process and passed to whatever needs them.

BentoML imports service.py in every process it starts (the supervisor, each API worker, each model worker) and
offers no earlier hook, so service.py builds one Serving from the environment at import (which prepares the
process: thread pools, framework patches) and declares its services with it; nothing else happens at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from swaparoony import __version__
from swaparoony.cpu_budget import one_blas_thread, one_opencv_thread
from swaparoony.engine import NO_USABLE_DESTINATION, SwapEngine
from swaparoony.errors import (
    AcceleratorUnavailable, CredentialsUnavailable, GalleryUnavailable, ModelsUnavailable, ServiceNotReady, SwaparoonyError,
)
from swaparoony.settings import Settings

from . import patches
from .admission import AdmissionMiddleware
from .auth import BearerTokenMiddleware
from .body_limit import BodyRules
from .client_key import ClientKeyMiddleware
from .compat import original_app
from .deadline import RequestDeadlineMiddleware
from .error_bodies import ErrorBodyMiddleware, RouteErrorShapeMiddleware
from .front_door import FrontDoorMiddleware
from .gallery_admin import gallery_admin
from .metrics import OutcomeMiddleware, service_metrics
from .model_client import BatchedFaceModels
from .model_host import ModelHost
from .openapi import public_document
from .readiness import ReadinessMiddleware
from .routes import ARCHIVES, PICTURES, PREDICT_PATH, unlisted
from .shutdown import DrainMarks

logger = logging.getLogger("swaparoony")
MODELS_UNAVAILABLE = (
    "The model files are missing or invalid, so the service cannot swap yet. The operator must install them "
    "(`swaparoony models pull`; see the README's 'Model files') and restart; the server log names each file."
)
BACKSTOP_S = 15
"""BentoML's own timeout, kept behind RequestDeadlineMiddleware's, which answers in the service's error shape."""
KEEP_CONNECTIONS: dict[str, Any] = {"max_requests": 2**62, "max_age": 1e12}
"""BentoML's client to a dependency closes its aiohttp session every 100 calls or 300 s, killing the calls
still in flight on it (bursts of dropped connections under load; a call waiting for a pooled connection
gets a bare CancelledError and its request hung until the timeout). The model service sits behind a local
socket with nothing to refresh, so the session is kept for the life of the worker."""
MODEL_CALLS_UNLOGGED: dict[str, Any] = {"access": {"enabled": False}}
"""The model service's calls come from the API service, which logs the request they serve: two more access lines
per request said nothing new, and cost the model service 0.5 ms of its event loop's CPU per request."""
START_ATTEMPTS = 600
"""How many times (a second apart) start-up asks a model service that is still loading before leaving it to the
next request or /readyz."""


class Serving:
    """Owns what the typed APIs in service.py stand on; one per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout_s = settings.request_timeout_s
        """Default 290 s: the booth frontend and its nginx give up at 300 s, so the service's 504 must come first."""
        self._engine: SwapEngine | None = None
        self._watching: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._problem = "The service is starting; retry shortly."
        self._model_service: Any = None
        self._unanswered = 0
        """Status calls the model service has not answered since this worker started (it is loading, or crashed)."""
        self._since = time.monotonic()
        self.original_api = original_app(self.engine, gallery_admin(self.engine))
        """The FastAPI app mounted at /: the original API and the operator routes, on this engine."""

    @classmethod
    def from_environment(cls) -> Serving:
        """The settings from SWAPAROONY_* variables, with this process prepared to serve them: one BLAS and OpenCV
        thread per worker, and the framework patches (http_api/patches.py) installed."""
        settings = Settings.from_env()
        logger.setLevel(logging.INFO)
        one_opencv_thread()
        one_blas_thread()
        patches.install(settings)
        return cls(settings)

    # What service.py's decorators take.

    def model_service(self) -> dict[str, Any]:
        """@bentoml.service arguments of the model service: one worker per GPU, each pinned to its own."""
        workers = self.settings.model_workers
        return {"name": "swaparoony-models", "resources": {"gpu": workers}, "workers": workers,
                "traffic": {"timeout": self.timeout_s}, "runner_connection": KEEP_CONNECTIONS,
                "logging": MODEL_CALLS_UNLOGGED}

    def model_host(self, worker_index: int | None) -> ModelHost:
        """A model worker's models, for BentoML's worker `worker_index`; it serves model calls on SIGTERM for as long
        as the API's requests may still need them."""
        return ModelHost(self.settings, worker_index, self.timeout_s + BACKSTOP_S)

    def batching(self) -> dict[str, Any]:
        """@bentoml.api arguments of a batchable model API; SWAPAROONY_MAX_BATCH_SIZE=1 turns adaptive batching off
        (the APIs take and return lists either way)."""
        if self.settings.max_batch_size <= 1:
            return {}
        return {"batchable": True, "max_batch_size": self.settings.max_batch_size,
                "max_latency_ms": self.settings.max_latency_ms}

    def api_service(self) -> dict[str, Any]:
        """@bentoml.service arguments of the public API service; CORS for the listed browser origins only."""
        options: dict[str, Any] = {"name": "swaparoony", "workers": self.settings.api_workers,
                                   "traffic": {"timeout": self.timeout_s + BACKSTOP_S}}
        if self.settings.cors_origins:
            options["http"] = {"cors": {
                "enabled": True,
                "access_control_allow_origins": list(self.settings.cors_origins),
                "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
                "access_control_allow_headers": ["Content-Type", "Authorization"],
                "access_control_max_age": 600,
            }}
        return options

    def assemble(self, model_service: Any, api_service: Any) -> None:
        """Check every declared route is in http_api/routes.py's table, pin the APIs' media types, and put the
        middleware stack in front of the API service (the first added is outermost)."""
        declared = [api.route for api in api_service.apis.values()]
        declared += paths(self.original_api.routes)
        missing = unlisted(declared)
        if missing:
            raise RuntimeError(f"routes missing from http_api/routes.py's table: {', '.join(missing)}")
        patches.pin_media_types(model_service, api_service)
        settings = self.settings
        api_service.add_asgi_middleware(RouteErrorShapeMiddleware)
        api_service.add_asgi_middleware(ClientKeyMiddleware)
        api_service.add_asgi_middleware(OutcomeMiddleware)
        api_service.add_asgi_middleware(RequestDeadlineMiddleware, timeout_s=self.timeout_s)
        api_service.add_asgi_middleware(FrontDoorMiddleware, rewrite=self.public_openapi, version=self.openapi_version)
        api_service.add_asgi_middleware(ReadinessMiddleware, reason=self.readiness)
        api_service.add_asgi_middleware(BearerTokenMiddleware, token=settings.api_token,
                                        operator_token=settings.admin_token)
        api_service.add_asgi_middleware(
            AdmissionMiddleware, max_active=settings.max_active_requests, max_receiving=settings.max_receiving_requests,
            max_queued=settings.max_queued_requests,
            rules=BodyRules(settings.max_body_bytes, {PREDICT_PATH: settings.max_json_body_bytes},
                            settings.body_timeout_s, settings.min_body_rate),
        )
        api_service.add_asgi_middleware(ErrorBodyMiddleware)

    # The engine's life cycle, in an API worker.

    def start(self, model_service: Any) -> None:
        """Prepare the gallery as soon as the model service answers, not on the first request."""
        self._model_service = model_service
        asyncio.get_running_loop().create_task(self._prepare_with_retries())

    def stop(self) -> None:
        """Runs once this worker has answered its last request: stop decoding, let the model service go."""
        if self._watching is not None:
            self._watching.cancel()
        if self._engine is not None:
            self._engine.close()
        try:
            DrainMarks().mark()
        except OSError as exc:  # the model service gives up waiting on its own; nothing is lost
            logger.warning("could not tell the model service this worker has drained: %s", exc)

    async def engine(self) -> SwapEngine:
        """The engine, built once; raises ServiceNotReady with the reason until it can be."""
        if self._engine is not None:
            return self._engine
        async with self._starting:
            if self._engine is None:
                try:
                    self._engine = await self._start_engine()
                except SwaparoonyError as exc:
                    self._problem = str(exc)
                    raise
                if self.settings.gallery_poll_s:
                    self._watching = asyncio.get_running_loop().create_task(
                        self._engine.live.watch(self.settings.gallery_poll_s))
        return self._engine

    async def readiness(self) -> str | None:
        """None when swaps can run, else why not, in one line; never waits for the engine being built."""
        if self._engine is None and not self._starting.locked():
            with contextlib.suppress(SwaparoonyError):
                await self.engine()
        if self._engine is None:
            return self._problem
        return None if self._engine.gallery.usable else NO_USABLE_DESTINATION

    def public_openapi(self, generated: dict[str, Any]) -> dict[str, Any]:
        """BentoML's generated OpenAPI document, valid and explained, with the gallery's names where they help."""
        return public_document(generated, __version__, self.settings.max_upload_bytes, self.settings.max_pixels,
                               list(self.openapi_version()), PICTURES, ARCHIVES)

    def openapi_version(self) -> tuple[str, ...]:
        """What public_openapi's document depends on that can change, the gallery's names: /docs.json is built again
        only when they change."""
        return tuple(self._engine.gallery.destinations) if self._engine else ()

    async def _prepare_with_retries(self) -> None:
        for _ in range(START_ATTEMPTS):
            try:
                await self.engine()
                return
            except (ModelsUnavailable, AcceleratorUnavailable, GalleryUnavailable, CredentialsUnavailable):
                return  # a person must fix the files, the GPU or the driver; every API and /readyz say so
            except ServiceNotReady:
                await asyncio.sleep(1.0)
            except Exception:
                logger.exception("preparing the engine failed; the next request or /readyz tries again")
                return

    async def _start_engine(self) -> SwapEngine:
        if self._model_service is None:
            raise ServiceNotReady("The service is starting; retry shortly.")
        models = BatchedFaceModels(self._model_service)
        try:
            status = await models.status()
        except Exception as exc:  # the model service is still loading, or it crashed and BentoML is starting it again
            self._unanswered += 1
            raise ServiceNotReady(
                f"The model service is starting: no answer to {self._unanswered} tries in "
                f"{time.monotonic() - self._since:.0f} s (last: {type(exc).__name__}); retry shortly. If this goes on, "
                "the model service's log says why it does not start."
            ) from exc
        if not status["ready"]:
            if status.get("cause") == "accelerator":  # no paths in it: the reason itself, with the ways out
                raise AcceleratorUnavailable(status["problem"])
            raise ModelsUnavailable(MODELS_UNAVAILABLE)  # the model service logged which files and why
        return await SwapEngine.start(models, self.settings, service_metrics())


def paths(routes: list[Any]) -> list[str]:
    """The paths of an app's routes, into the routers FastAPI includes (it wraps each in a route of its own)."""
    found: list[str] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found += paths(included.routes) if included is not None else [getattr(route, "path", "")]
    return found
