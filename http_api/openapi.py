"""The OpenAPI document people and Swagger UI read: valid 3.1, every parameter explained, the real errors.

BentoML generates a document that says 3.0.2 but uses 3.1 features, types uploads as `file` (not
a JSON Schema type), marks every multipart text field `application/json` (so Swagger UI sends the
word `jpeg` as a JSON blob), documents 400/404/500 with a body the service never sends, and fills
the page with BentoML's own title, badges and links. This rewrites what it generated.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swaparoony.errors import (
    BadRequest, DecodeTooCostly, FaceIdOutOfRange, GalleryNotWritable, NoFaceFound, ServiceNotReady, SigningFailed, SwaparoonyError,
    TooManySwaps, UndecodableImage, UnknownDestination, UnsupportedImageFormat, UploadTooLarge,
)
from swaparoony.imaging.image_file import HINT

DESCRIPTION = """Swap a face from a photo into the portraits kept on this server. Faces are numbered from
1, left to right.

**Start here** (open an API, press *Try it out*, choose a photo, *Execute*):

1. `POST /faces_image`: your photo with each face boxed and numbered, to choose `source_face_id`.
2. `POST /swap_image`: the face swapped into one destination portrait, shown as a picture.
3. `POST /swap_sheet`: the face swapped into every destination, as one contact sheet.

`POST /swap` and `POST /faces` answer the same as JSON for programs (`POST /swap_zip`: the pictures as files
in a ZIP, no base64); `POST /destinations` lists the portraits. Every picture is an AI face swap, and says so in the file: a signed C2PA manifest (Content
Credentials) and IPTC XMP, which `swaparoony inspect FILE` reads back. Model weights: InsightFace, non-commercial research use only."""


@dataclass(frozen=True)
class Parameter:
    """How one API parameter is explained in the document."""

    description: str
    example: Any = None


def parameters(max_upload_bytes: int, max_pixels: int, destinations: Sequence[str]) -> dict[str, Parameter]:
    first = destinations[0] if destinations else "astronaut.png"
    return {
        "image": Parameter(
            f"The photo with the face(s) to use. {HINT[:-1]}, at most {max_upload_bytes // 2**20} MiB and "
            f"{max_pixels / 1e6:g} megapixels."
        ),
        "source_face_id": Parameter("Which face of the photo to use: 1 is the leftmost, 2 the next, and so on "
                                    "(`POST /faces_image` shows the numbers).", 1),
        "destination_face_id": Parameter("Which face of each destination portrait to replace, counted the same way; 0 "
                                         "replaces every face of each destination with the chosen upload face.", 1),
        "pixel_boost": Parameter("The size each face is swapped at: 128 (the model's own), 256 or 512 for a sharper face "
                                 "(4 or 16 swaps per face, so about 4x or 16x the model work).", 128),
        "face_map": Parameter("Several faces at once: upload face:destination face pairs, e.g. 1:2,2:1 puts upload "
                              "face 1 into destination face 2 and upload face 2 into destination face 1. When given, "
                              "source_face_id and destination_face_id are not used."),  # no example: Swagger UI would fill it in
        "color_match": Parameter("Match the swapped face's colours (mean and spread in LAB, inside the blend mask) to the "
                                 "destination face's lighting before pasting.", False),
        "destinations": Parameter("The destination portraits to swap into; leave empty for all of them. In a form, "
                                  "repeat the field or give comma-separated names.", [first]),
        "destination": Parameter("The destination portrait to swap into (`POST /destinations` lists them).", first),
        "output_format": Parameter("The format of the returned picture(s).", "jpeg"),
    }


@dataclass(frozen=True)
class ErrorStatus:
    """One error status as documented: when it happens, the domain errors behind it, and an example body."""

    description: str
    raised_by: tuple[type[SwaparoonyError], ...]
    example: dict[str, str]


ERRORS: dict[int, ErrorStatus] = {
    400: ErrorStatus("The photo cannot be read, or a parameter is wrong or unknown.", (UndecodableImage, BadRequest),
                     {"error": f"The upload is not an image Swaparoony can read. {HINT}", "code": "invalid_image"}),
    404: ErrorStatus("A destination name is not in the gallery.", (UnknownDestination,),
                     {"error": "unknown destination(s) ['nope.png']; known: [...] (see POST /destinations)",
                      "code": "unknown_destination"}),
    413: ErrorStatus("The upload or request body is too large (bytes or pixels).", (UploadTooLarge,),
                     {"error": "The image is 9000x6000 = 54,000,000 pixels; the limit is 40,000,000.", "code": "too_large"}),
    415: ErrorStatus("The photo is in a format the service does not read.", (UnsupportedImageFormat,),
                     {"error": f"GIF images are not supported. {HINT}", "code": "unsupported_format"}),
    422: ErrorStatus("No face in the photo, a face number out of range, a photo too costly to decode, or more swaps "
                     "than one request may ask for (too_many_swaps).",
                     (NoFaceFound, FaceIdOutOfRange, DecodeTooCostly, TooManySwaps),
                     {"error": "source_face_id=4 is out of range: 3 face(s) found in the upload; use 1 to 3, counted left "
                               "to right.", "code": "face_id_out_of_range"}),
    409: ErrorStatus("The destinations directory cannot be changed, or the gallery is full (operator routes only).",
                     (GalleryNotWritable,),
                     {"error": "The destinations directory cannot be changed (Read-only file system). Mount a writable "
                               "volume there (a PVC; a ConfigMap is read-only) to manage the gallery over the API.",
                      "code": "gallery_not_writable"}),
    500: ErrorStatus("The server failed (a picture it could not sign is never sent unmarked); its log says why.",
                     (SigningFailed,),
                     {"error": "The server failed to process the request; the log says why.", "code": "internal_error"}),
    503: ErrorStatus("Not ready (models missing or loading, no usable destination) or busy (with Retry-After).",
                     (ServiceNotReady,), {"error": "The service is starting; retry shortly.", "code": "not_ready"}),
    504: ErrorStatus("The request took longer than the service's request timeout.", (),
                     {"error": "The request took longer than 290 seconds and was stopped; try again, with a smaller photo "
                               "or fewer destinations.", "code": "timeout"}),
}
NO_UPLOAD = (500, 503, 504)
OPERATOR_ONLY = (409,)
TAGS = [
    {"name": "Service APIs", "description": "Face swap: start with /faces_image, then /swap_image or /swap_sheet."},
    {"name": "Original Swaparoony API", "description": "The original service's routes, for its React booth frontend "
                                                       "and scripts: same engine, original bodies."},
    {"name": "Gallery (operators)", "description": "Add, replace and remove destination portraits with the operator "
                                                   "token (SWAPAROONY_ADMIN_TOKEN); Authorize with it first."},
    {"name": "Infrastructure", "description": "Probes and Prometheus metrics."},
]
ERROR_SCHEMA = {
    "type": "object", "required": ["error", "code"], "title": "Error",
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do, in a sentence."},
        "code": {"type": "string", "description": "A short code to branch on, e.g. no_face or too_large."},
    },
}
PICTURE_TYPES = ("image/jpeg", "image/png", "image/webp")


def public_document(generated: dict[str, Any], version: str, max_upload_bytes: int, max_pixels: int,
                    destinations: Sequence[str], picture_routes: Sequence[str],
                    archive_routes: Sequence[str] = ()) -> dict[str, Any]:
    """BentoML's generated document, made valid and explained."""
    doc = copy.deepcopy(generated)
    doc["openapi"] = "3.1.0"
    doc["info"] = {"title": "Swaparoony", "version": version, "description": DESCRIPTION}
    doc["tags"] = TAGS
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    for schema in schemas.values():
        _fix_file_types(schema)
    explained = parameters(max_upload_bytes, max_pixels, destinations)
    for path, item in doc.get("paths", {}).items():
        operation = item.get("post")
        if not operation or "x-bentoml-name" not in operation:
            continue
        body = operation.get("requestBody", {}).get("content", {})
        form = body.get("multipart/form-data")
        if form:
            form.pop("encoding", None)  # text fields go as plain text, not JSON blobs
            _explain(form["schema"], explained, destinations)
        takes_upload = bool(form)
        operation["responses"] = {
            "200": _success(operation["responses"].get("200", {}), path in picture_routes, path in archive_routes),
            **{str(status): _error(error) for status, error in ERRORS.items()
               if status not in OPERATOR_ONLY and (takes_upload or status in NO_UPLOAD)},
        }
    return doc


def _fix_file_types(schema: dict[str, Any]) -> None:
    """Files as binary strings: BentoML writes type "file" (not a JSON Schema type); FastAPI writes 3.1's
    contentMediaType alone, which Swagger UI 5.12 does not offer a file picker for."""
    for prop in schema.get("properties", {}).values():
        if prop.get("type") == "file":
            prop.clear()
            prop.update({"type": "string", "format": "binary", "contentMediaType": "image/*"})
        elif prop.get("type") == "string" and "contentMediaType" in prop:
            prop.setdefault("format", "binary")


def _explain(schema: dict[str, Any], explained: dict[str, Parameter], destinations: Sequence[str]) -> None:
    for name, prop in schema.get("properties", {}).items():
        parameter = explained.get(name)
        if parameter is None:
            continue
        prop["description"] = parameter.description
        if parameter.example is not None:
            prop["examples"] = [parameter.example]
        if name == "destination" and destinations:
            prop["enum"] = list(destinations)
        if name == "destinations":
            prop.pop("default", None)  # "null" would be offered as a name
            prop["items"] = {"type": "string", **({"enum": list(destinations)} if destinations else {})}


def _success(generated: dict[str, Any], picture: bool, archive: bool = False) -> dict[str, Any]:
    if archive:
        return {"description": "A ZIP archive: each picture as a file named after its destination, and results.json "
                               "listing them (and the destinations skipped, with why).",
                "content": {"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}}}
    if not picture:
        return generated
    return {"description": "The picture itself, in the requested format.",
            "content": {media: {"schema": {"type": "string", "contentMediaType": media}} for media in PICTURE_TYPES}}


def _error(error: ErrorStatus) -> dict[str, Any]:
    return {"description": error.description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}, "example": error.example,
    }}}
