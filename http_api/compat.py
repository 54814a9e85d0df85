"""The original Swaparoony API (FastAPI and KServe v1 forms), so its React frontend and scripts work unchanged.

Mounted on the entry service by the serving layer, which hands it the engine; every route calls the same engine
as the typed APIs and only reshapes its results and errors into the original bodies.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import pybase64
from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from swaparoony.engine import SwapOptions, SwapOutcome
from swaparoony.swap_plan import STILL
from swaparoony.errors import BadRequest, FaceIdOutOfRange, NoFaceFound, SwaparoonyError, UndecodableImage, UnsupportedImageFormat
from swaparoony.settings import Settings

from . import kserve_body
from .gallery_admin import Engine
from .routes import MODEL_NAME, PREDICT_PATH
from .schemas import MAX_FACE_ID

TAGS: list[str | Enum] = ["Original Swaparoony API"]
# The original FastAPI service answered 400 for all of these; other statuses keep their own code.
ORIGINAL_400 = (UndecodableImage, UnsupportedImageFormat, NoFaceFound, FaceIdOutOfRange, BadRequest)

FORM_HINT = ("Send multipart/form-data with an image file and whole numbers source_face_id and destination_face_id "
             "(1 is the leftmost face).")


async def malformed_fields(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 with one sentence naming each bad field, never echoing its value: /api/v1/swap in the original's
    {"detail"} shape, the operator routes in the service's {"error", "code"}. FastAPI's 422 listed the input."""
    problems = "; ".join(f"{'.'.join(map(str, error['loc'][1:])) or 'request'}: {error['msg']}" for error in exc.errors())
    if request.url.path == "/api/v1/swap":
        return JSONResponse({"detail": f"{problems}. {FORM_HINT}"}, status_code=400)
    return JSONResponse({"error": f"{problems}.", "code": "invalid_parameter"}, status_code=400)


PREDICT_REQUEST = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "description": "base64 image, optionally with a data:image/...;base64, prefix"},
            "source_face_id": {"type": "integer", "minimum": 1, "default": 1},
            "destination_face_id": {"type": "integer", "minimum": 1, "default": 1},
        },
    }}},
}


class OriginalSwappedImage(BaseModel):
    image_data: str
    destination_name: str


class OriginalSwapResponse(BaseModel):
    success: bool
    message: str
    swapped_images: list[OriginalSwappedImage]
    faces_detected_in_source: int


def original_body(outcome: SwapOutcome) -> dict[str, Any]:
    """The original success body: base64 JPEGs and the source face count."""
    return {
        "success": True,
        "message": f"Successfully swapped face onto {len(outcome.swapped)} images",
        "swapped_images": [
            {"image_data": pybase64.b64encode(image.data).decode("ascii"), "destination_name": image.destination_name}
            for image in outcome.swapped
        ],
        "faces_detected_in_source": outcome.faces_detected_in_source,
    }


def original_app(engine: Engine, *routers: APIRouter) -> FastAPI:
    """The FastAPI app BentoML mounts at /: the original API's routes on this engine, and the given routers."""
    app = FastAPI(
        title="Swaparoony original API", description="Drop-in routes of the original Swaparoony service.",
        # The service's own /docs.json and Swagger UI document these routes; no second set of docs beside them.
        docs_url=None, redoc_url=None, openapi_url=None,
        form_limits={"max_files": Settings.max_form_parts, "max_fields": Settings.max_form_parts,
                     "max_part_size": Settings.max_form_field_bytes},
    )
    app.add_exception_handler(RequestValidationError, malformed_fields)  # type: ignore[arg-type]
    app.include_router(original_routes(engine))
    for router in routers:
        app.include_router(router)
    return app


def original_routes(engine: Engine) -> APIRouter:
    """/api/v1/swap and /api/v1/health as the original FastAPI service had them, and KServe v1's predict and
    model readiness as the React frontend calls them."""
    router = APIRouter(tags=TAGS)

    async def swapped(upload: bytes, source_face_id: int, destination_face_id: int) -> SwapOutcome:
        # a clip as its first swapped frame: the original clients show every result as a JPEG
        return await (await engine()).swap(upload, SwapOptions(source_face_id, destination_face_id, None, "jpeg",
                                                               clip_format=STILL))

    async def readiness() -> tuple[bool, int]:
        try:
            ready = await engine()
        except SwaparoonyError:
            return False, 0
        return True, len(ready.gallery.destinations)

    @router.post("/api/v1/swap", summary="Original FastAPI swap (multipart)", response_model=OriginalSwapResponse)
    async def api_v1_swap(
        image: UploadFile = File(...), source_face_id: int = Form(1), destination_face_id: int = Form(1)
    ) -> JSONResponse:
        """Swap one upload face into every destination, answering as the original FastAPI service did."""
        try:
            outcome = await swapped(await image.read(), *_face_ids(source_face_id, destination_face_id))
        except SwaparoonyError as exc:
            status = 400 if isinstance(exc, ORIGINAL_400) else exc.status
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return JSONResponse(original_body(outcome))

    @router.get("/api/v1/health", summary="Original health check")
    async def api_v1_health() -> dict[str, Any]:
        """Healthy while the process runs; models_loaded says whether swaps can run."""
        ready, count = await readiness()
        return {"status": "healthy", "models_loaded": ready, "destination_images_count": count}

    @router.post(PREDICT_PATH, summary="KServe v1 predict, as the React frontend calls it",
                 openapi_extra={"requestBody": PREDICT_REQUEST}, response_model=OriginalSwapResponse)
    async def kserve_predict(request: Request) -> JSONResponse:
        """JSON `{image: base64 (data URL prefix allowed), source_face_id, destination_face_id}`."""
        try:
            upload, payload = await kserve_body.read(request)
            outcome = await swapped(upload, *_face_ids(payload.get("source_face_id", 1),
                                                       payload.get("destination_face_id", 1)))
        except SwaparoonyError as exc:
            return JSONResponse({"success": False, "error": exc.title, "detail": str(exc)}, status_code=exc.status)
        return JSONResponse(original_body(outcome))

    @router.get(f"/v1/models/{MODEL_NAME}", summary="KServe v1 model readiness")
    async def kserve_model() -> dict[str, Any]:
        """Whether the model is ready to predict."""
        ready, _ = await readiness()
        return {"name": MODEL_NAME, "ready": ready}

    return router


def _face_ids(*ids: Any) -> tuple[int, ...]:
    checked = []
    for name, value in zip(("source_face_id", "destination_face_id"), ids):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FACE_ID:
            raise BadRequest(f"{name} must be a whole number from 1 to {MAX_FACE_ID:,} (faces are counted left to right), "
                             f"got {str(value)[:20]!r}")
        checked.append(value)
    return tuple(checked)
