"""BentoML shell: a batching model service on the GPU and the public API in front of it.

All image and model logic lives in the framework-free `swaparoony` package; this file declares the
typed APIs, routes model runs through BentoML's adaptive batching and maps domain errors to HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import bentoml
import numpy as np
from starlette.responses import Response

import bento_models
import swaparoony
from http_api import compat, patches
from http_api.admission import AdmissionMiddleware
from http_api.auth import BearerTokenMiddleware
from http_api.body_limit import BodyRules
from http_api.client_key import ClientKeyMiddleware
from http_api.deadline import RequestDeadlineMiddleware
from http_api.error_bodies import ErrorBodyMiddleware
from http_api.metrics import OutcomeMiddleware, service_metrics
from http_api.model_client import BatchedFaceModels
from http_api.model_wire import Carried
from http_api.readiness import ReadinessMiddleware
from http_api.front_door import FrontDoorMiddleware
from http_api.gallery_admin import gallery_admin
from http_api.openapi import public_document
from http_api.schemas import (
    ARCHIVE, PICTURE, SWAP_RESPONSE, DestinationFaceId, DestinationNames, DestinationOut, FaceId, FaceMapText, FaceOut,
    ImageUpload, PixelBoost,
    OutputFormat, answers_errors, similarity_header, swap_json, swap_options,
)
from http_api.shutdown import CallCount, DrainMarks, drain_on_sigterm
from swaparoony.cpu_budget import one_blas_thread, one_opencv_thread
from swaparoony.engine import NO_USABLE_DESTINATION, SwapEngine
from swaparoony.errors import (
    AcceleratorUnavailable, CredentialsUnavailable, GalleryUnavailable, ModelsUnavailable, ServiceNotReady, SwaparoonyError,
)
from swaparoony.models import swap_pipeline
from swaparoony.models.cache import ModelCache
from swaparoony.models.family import RunOptions
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.results_archive import results_archive
from swaparoony.settings import DEFAULT_MODELS_DIR, Settings
from swaparoony.types import FaceSwapRequest, FaceSwapResult

logger = logging.getLogger("swaparoony")
logger.setLevel(logging.INFO)
settings = Settings.from_env()
one_opencv_thread()
one_blas_thread()

patches.install(settings)
compat.app.include_router(gallery_admin(lambda: bentoml.get_current_service().engine()))

TIMEOUT_S = settings.request_timeout_s
"""Default 290 s: the booth frontend and its nginx give up at 300 s, so the service's 504 must come first."""
MODELS_UNAVAILABLE = (
    "The model files are missing or invalid, so the service cannot swap yet. The operator must install them "
    "(`swaparoony models pull`; see the README's 'Model files') and restart; the server log names each file."
)
PICTURE_ROUTES = ("/swap_image", "/swap_sheet", "/faces_image")
ARCHIVE_ROUTES = ("/swap_zip",)
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
# The APIs take and return lists either way; SWAPAROONY_MAX_BATCH_SIZE=1 turns adaptive batching off.
BATCHING: dict[str, Any] = (
    {"batchable": True, "max_batch_size": settings.max_batch_size, "max_latency_ms": settings.max_latency_ms}
    if settings.max_batch_size > 1 else {}
)


@bentoml.service(
    name="swaparoony-models", resources={"gpu": settings.model_workers}, workers=settings.model_workers,
    traffic={"timeout": TIMEOUT_S}, runner_connection=KEEP_CONNECTIONS, logging=MODEL_CALLS_UNLOGGED,
)
class FaceModels:
    """Owns the ONNX Runtime sessions: one worker per GPU, pinned to it, so each GPU holds one copy of each model
    and batches its own calls."""

    if bento_models.stored_dir() is not None:
        # `bentoml build` packs the store's model into the Bento only when there is one to pack.
        stored_models = bentoml.models.BentoModel(bento_models.TAG)

    def __init__(self) -> None:
        self.loaded: LoadedModels | None = None
        self.problem: str | None = None
        self.drained = DrainMarks()
        self.drained.clear()
        self.answered = CallCount()
        models_dir = settings.models_dir or bento_models.stored_dir() or DEFAULT_MODELS_DIR
        device = ((bentoml.server_context.worker_index or 1) - 1) % settings.model_workers  # BentoML counts from 1
        try:
            self.loaded = LoadedModels.load(models_dir, settings.providers, RunOptions(settings.detection_threshold),
                                            {"detector": settings.detector}, settings.rebatch,
                                            ModelCache(settings.state_dir), device)
            self.loaded.telemetry = service_metrics()
            logger.info("models ready, providers %s, batch as one call %s", self.loaded.providers, self.loaded.batching)
        except AcceleratorUnavailable:
            raise  # refuse to start rather than run a GPU deployment silently on CPU
        except ModelsUnavailable as exc:
            self.problem = str(exc)
            logger.error("models unavailable; APIs answer 503 until fixed and restarted:\n%s", exc)

    def __is_ready__(self) -> bool:
        return self.loaded is not None

    @bentoml.on_startup
    async def keep_serving_while_the_api_drains(self) -> None:
        """On SIGTERM, answer model calls until every API worker has finished its in-flight requests."""
        drain_on_sigterm(lambda: self.drained.count() >= settings.api_workers, lambda: self.answered.total,
                         TIMEOUT_S + BACKSTOP_S)

    @bentoml.api
    def status(self) -> dict[str, Any]:
        """Whether the models loaded, and if not, what to do about it."""
        providers = self.loaded.providers if self.loaded else {}
        return {"ready": self.loaded is not None, "problem": self.problem, "providers": providers}

    @bentoml.api(**BATCHING)
    def detect(self, canvases: list[np.ndarray]) -> list[np.ndarray]:
        """Detector rows per 640x640 canvas."""
        found = self._models().detect(canvases)
        self.answered.add(len(canvases))
        return found

    @bentoml.api(**BATCHING)
    def swap_faces(self, requests: list[Carried[FaceSwapRequest]]) -> list[Carried[FaceSwapResult]]:
        """Per request, its source faces swapped into their destination crops, with each result's identity
        similarity: the embeddings and latents stay here, so a request makes two calls to this service
        (detect, swap_faces), not three."""
        done = swap_pipeline.swap_faces(self._models(), requests)
        self.answered.add(len(requests))
        return done

    def _models(self) -> LoadedModels:
        if self.loaded is None:
            raise bentoml.exceptions.ServiceUnavailable(self.problem or "models not loaded")
        return self.loaded


def http_config(origins: tuple[str, ...]) -> dict[str, Any]:
    """CORS for the listed browser origins only; none by default."""
    if not origins:
        return {}
    return {"cors": {
        "enabled": True,
        "access_control_allow_origins": list(origins),
        "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
        "access_control_allow_headers": ["Content-Type", "Authorization"],
        "access_control_max_age": 600,
    }}


@bentoml.asgi_app(compat.app, path="/")
@bentoml.service(
    name="swaparoony", workers=settings.api_workers, traffic={"timeout": TIMEOUT_S + BACKSTOP_S},
    http=http_config(settings.cors_origins),
)
class Swaparoony:
    """Face swap onto the preloaded destination portraits. Faces are numbered left to right from 1."""

    models = bentoml.depends(FaceModels)

    def __init__(self) -> None:
        self._engine: SwapEngine | None = None
        self._watching: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._problem = "The service is starting; retry shortly."

    @bentoml.on_startup
    async def analyse_destinations_now(self) -> None:
        """Prepare the gallery as soon as the model service answers, not on the first request."""
        asyncio.get_running_loop().create_task(self._prepare_with_retries())

    @bentoml.on_shutdown
    async def release_the_model_service(self) -> None:
        """Runs once this worker has answered its last request: stop decoding, let the model service go."""
        if self._watching is not None:
            self._watching.cancel()
        if self._engine is not None:
            self._engine.close()
        try:
            DrainMarks().mark()
        except OSError as exc:  # the model service gives up waiting on its own; nothing is lost
            logger.warning("could not tell the model service this worker has drained: %s", exc)

    async def _prepare_with_retries(self) -> None:
        for _ in range(600):
            try:
                await self.engine()
                return
            except (ModelsUnavailable, GalleryUnavailable, CredentialsUnavailable):
                return  # a person must fix the files; every API and /readyz say so
            except ServiceNotReady:
                await asyncio.sleep(1.0)
            except Exception:
                logger.exception("preparing the engine failed; the next request or /readyz tries again")
                return

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
                if settings.gallery_poll_s:
                    self._watching = asyncio.get_running_loop().create_task(self._engine.live.watch(settings.gallery_poll_s))
        return self._engine

    async def _start_engine(self) -> SwapEngine:
        models = BatchedFaceModels(self.models)
        try:
            status = await models.status()
        except Exception as exc:  # the model service is still starting
            raise ServiceNotReady(f"The model service is starting ({type(exc).__name__}); retry shortly.") from exc
        if not status["ready"]:
            raise ModelsUnavailable(MODELS_UNAVAILABLE)  # the model service logged which files and why
        return await SwapEngine.start(models, settings, service_metrics())

    async def readiness(self) -> str | None:
        """None when swaps can run, else why not, in one line; never waits for the engine being built."""
        if self._engine is None and not self._starting.locked():
            with contextlib.suppress(SwaparoonyError):
                await self.engine()
        if self._engine is None:
            return self._problem
        return None if self._engine.gallery.usable else NO_USABLE_DESTINATION

    async def __is_ready__(self) -> bool:
        return await self.readiness() is None

    def public_openapi(self, generated: dict[str, Any]) -> dict[str, Any]:
        """BentoML's generated OpenAPI document, valid and explained, with the gallery's names where they help."""
        names = list(self._engine.gallery.destinations) if self._engine else []
        return public_document(generated, swaparoony.__version__, settings.max_upload_bytes, settings.max_pixels,
                               names, PICTURE_ROUTES, ARCHIVE_ROUTES)

    def openapi_version(self) -> tuple[str, ...]:
        """What public_openapi's document depends on that can change, the gallery's names: /docs.json is built again
        only when they change."""
        return tuple(self._engine.gallery.destinations) if self._engine else ()

    @bentoml.api(route="/swap", output_spec=SWAP_RESPONSE)
    @answers_errors
    async def swap(
        self,
        image: ImageUpload,
        source_face_id: FaceId = 1,
        destination_face_id: DestinationFaceId = 1,
        destinations: DestinationNames = None,
        output_format: OutputFormat = "jpeg",
        pixel_boost: PixelBoost = 128,
        face_map: FaceMapText = None,
        color_match: bool = False,
    ) -> Response:
        """Swap a face of the upload (or several, with face_map) into every selected destination (all by default); the
        pictures come as base64 JSON, each with how well the identity came through."""
        options = swap_options(source_face_id, destination_face_id, tuple(destinations or ()), output_format, pixel_boost,
                               face_map, color_match)
        return Response(swap_json(await (await self.engine()).swap(image, options)), media_type="application/json")

    @bentoml.api(route="/swap_image", output_spec=PICTURE)
    @answers_errors
    async def swap_image(
        self,
        image: ImageUpload,
        destination: str,
        source_face_id: FaceId = 1,
        destination_face_id: DestinationFaceId = 1,
        output_format: OutputFormat = "jpeg",
        pixel_boost: PixelBoost = 128,
        face_map: FaceMapText = None,
        color_match: bool = False,
    ) -> Response:
        """Swap into one destination and get the picture itself, shown in Swagger UI; X-Identity-Similarity says how
        well the identity came through."""
        options = swap_options(source_face_id, destination_face_id, (destination,), output_format, pixel_boost, face_map,
                               color_match)
        (result,) = (await (await self.engine()).swap(image, options)).swapped
        return Response(result.data, media_type=result.media_type, headers=similarity_header(result.identity_similarity))

    @bentoml.api(route="/swap_zip", output_spec=ARCHIVE)
    @answers_errors
    async def swap_zip(
        self,
        image: ImageUpload,
        source_face_id: FaceId = 1,
        destination_face_id: DestinationFaceId = 1,
        destinations: DestinationNames = None,
        output_format: OutputFormat = "jpeg",
        pixel_boost: PixelBoost = 128,
        face_map: FaceMapText = None,
        color_match: bool = False,
    ) -> Response:
        """Like /swap, with the pictures as files in a ZIP archive (no base64): results.json lists them and the skipped."""
        options = swap_options(source_face_id, destination_face_id, tuple(destinations or ()), output_format, pixel_boost,
                               face_map, color_match)
        outcome = await (await self.engine()).swap(image, options)
        return Response(results_archive(outcome), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="swaparoony.zip"'})

    @bentoml.api(route="/swap_sheet", output_spec=PICTURE)
    @answers_errors
    async def swap_sheet(
        self,
        image: ImageUpload,
        source_face_id: FaceId = 1,
        destination_face_id: DestinationFaceId = 1,
        destinations: DestinationNames = None,
        output_format: OutputFormat = "jpeg",
        pixel_boost: PixelBoost = 128,
        face_map: FaceMapText = None,
        color_match: bool = False,
    ) -> Response:
        """Swap into every selected destination and get one contact sheet with each destination's name."""
        options = swap_options(source_face_id, destination_face_id, tuple(destinations or ()), output_format, pixel_boost,
                               face_map, color_match)
        sheet, lowest = await (await self.engine()).swap_sheet(image, options)
        return Response(sheet.data, media_type=sheet.media_type, headers=similarity_header(lowest))

    @bentoml.api(route="/faces")
    @answers_errors
    async def faces(self, image: ImageUpload) -> list[FaceOut]:
        """The faces found in an upload, left to right, to help choose source_face_id."""
        found = await (await self.engine()).find_faces(image)
        return [FaceOut(face_id=i, bbox=[round(v, 1) for v in f.bbox], score=round(f.score, 4)) for i, f in enumerate(found, 1)]

    @bentoml.api(route="/faces_image", output_spec=PICTURE)
    @answers_errors
    async def faces_image(self, image: ImageUpload, output_format: OutputFormat = "jpeg") -> Response:
        """The upload with each face boxed and numbered left to right: the number is source_face_id."""
        picture, count = await (await self.engine()).faces_picture(image, output_format)
        return Response(picture.data, media_type=picture.media_type, headers={"X-Faces-Found": str(count)})

    @bentoml.api(route="/destinations")
    @answers_errors
    async def destinations(self) -> list[DestinationOut]:
        """The destination gallery in its order, with each portrait's faces, title, or why it cannot be used."""
        return [DestinationOut.of(d) for d in (await self.engine()).gallery.destinations.values()]


patches.pin_media_types(FaceModels, Swaparoony)
Swaparoony.add_asgi_middleware(ClientKeyMiddleware)  # first added is outermost
Swaparoony.add_asgi_middleware(OutcomeMiddleware)
Swaparoony.add_asgi_middleware(RequestDeadlineMiddleware, timeout_s=TIMEOUT_S)
Swaparoony.add_asgi_middleware(FrontDoorMiddleware, rewrite=lambda doc: bentoml.get_current_service().public_openapi(doc),
                               version=lambda: bentoml.get_current_service().openapi_version())
Swaparoony.add_asgi_middleware(ReadinessMiddleware, reason=lambda: bentoml.get_current_service().readiness())
Swaparoony.add_asgi_middleware(BearerTokenMiddleware, token=settings.api_token, operator_token=settings.admin_token)
Swaparoony.add_asgi_middleware(
    AdmissionMiddleware, max_active=settings.max_active_requests, max_receiving=settings.max_receiving_requests,
    max_queued=settings.max_queued_requests,
    rules=BodyRules(settings.max_body_bytes, {compat.PREDICT_PATH: settings.max_json_body_bytes}, settings.body_timeout_s,
                    settings.min_body_rate),
)
Swaparoony.add_asgi_middleware(ErrorBodyMiddleware)
