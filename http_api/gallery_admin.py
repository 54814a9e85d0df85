"""The operator routes that change the gallery: PUT and DELETE /destinations/{name}, behind the operator token.

The token is separate from the API token (a booth's kiosk has that one); without SWAPAROONY_ADMIN_TOKEN the
routes stay closed and say how to open them. http_api/auth.py checks it from the headers, before admission
and before the body is read; the routes declare it only so that Swagger UI offers it under Authorize. They
are mounted on the FastAPI app beside the original API, since BentoML's typed APIs have no path parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, File, Security, UploadFile
from fastapi import Path as PathParameter
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from swaparoony.engine import SwapEngine
from swaparoony.errors import SwaparoonyError

from .schemas import DestinationOut, error_response

PATH = "/destinations/{name}"
TAG = "Gallery (operators)"
NAME = PathParameter(description="The file name: a JPEG, PNG or WebP portrait, or a GIF, animated WebP, MP4, MOV or WebM "
                                 "clip; no folders", examples=["booth_2026.jpg"])
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for status, why in {
        400: "Not a usable file name, or a file that does not decode",
        403: "The operator token is missing or wrong, or not configured",
        404: "No such destination (DELETE)", 409: "The destinations directory is read-only or full",
        413: "Over the byte or pixel limit, or a clip over a frame, second or frame-pixel limit",
        415: "Not a portrait or clip format, or not the format its name says",
        422: "No face in the portrait or in any frame of the clip (PUT), or too costly to decode",
        503: "The models are not loaded",
    }.items()
}

bearer = HTTPBearer(auto_error=False, scheme_name="operatorToken",
                    description="The operator token, SWAPAROONY_ADMIN_TOKEN (not the API token).")
Engine = Callable[[], Awaitable[SwapEngine]]
"""The engine, once it can be built; raises ServiceNotReady (or another SwaparoonyError) until then."""


def gallery_admin(engine: Engine) -> APIRouter:
    """The operator routes; BearerTokenMiddleware lets only the operator token reach them."""
    router = APIRouter(tags=[TAG])

    @router.put(PATH, summary="Add or replace a destination portrait or clip (operators)", status_code=201,
                response_model=DestinationOut,
                responses={201: {"description": "Added, and analysed"},
                           200: {"model": DestinationOut, "description": "Replaced, and analysed again"}, **ERRORS})
    async def put_destination(name: str = NAME,
                              image: UploadFile = File(..., description="The portrait or clip: a clearly visible face"),
                              _: HTTPAuthorizationCredentials | None = Security(bearer)) -> Response:
        """Writes the portrait or clip into the destinations directory after checking it decodes within the upload
        limits (a clip also within SWAPAROONY_MAX_CLIP_*) and has a face; the gallery reloads at once here and on every
        replica sharing the directory within its poll. 201 for a new file, 200 for a replaced one."""
        try:
            destination, new = await (await engine()).editor.put(name, await image.read())
        except SwaparoonyError as exc:
            return error_response(exc)
        return JSONResponse(DestinationOut.of(destination).model_dump(), status_code=201 if new else 200)

    @router.delete(PATH, summary="Remove a destination portrait or clip (operators)", status_code=204,
                   response_class=Response, responses=ERRORS)
    async def delete_destination(name: str = NAME,
                                 _: HTTPAuthorizationCredentials | None = Security(bearer)) -> Response:
        """Deletes the file; it leaves the gallery at once here and on other replicas within their poll."""
        try:
            await (await engine()).editor.remove(name)
        except SwaparoonyError as exc:
            return error_response(exc)
        return Response(status_code=204)

    return router
