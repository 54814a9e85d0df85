"""The public API's types: the upload, the parameters, and the JSON bodies it answers with."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import PIL.Image
import pybase64
from bentoml import IODescriptor
from bentoml.validators import ContentType
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WrapValidator, create_model
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse

from swaparoony.engine import SwapOptions, SwapOutcome
from swaparoony.face_map import parse_face_map
from swaparoony.errors import SwaparoonyError
from swaparoony.gallery.portraits import Destination
from swaparoony.imaging.face_masks import MASK_TYPES
from swaparoony.models.face_enhancer import DEFAULT_WEIGHT, ENHANCERS
from swaparoony.models.face_parser import REGIONS
from swaparoony.models.pixel_boost import BOOST_SIZES
from swaparoony.models.registry import service_files
from swaparoony.settings import Settings

import bento_models

from .request_parsing import FILE_HINT

P = ParamSpec("P")
OUTPUT_ONLY = "a signature for IODescriptor.from_output to read; never called"
T = TypeVar("T")


def _keep_upload_bytes(value: Any, handler: Any) -> Any:
    """Hold the uploaded file as bytes in memory; the engine decodes it and reports bad images as 4xx."""
    if isinstance(value, UploadFile):
        return value.file.read()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, PIL.Image.Image):  # an in-process caller passing a picture
        buffer = io.BytesIO()
        value.save(buffer, format=value.format or "PNG")
        return buffer.getvalue()
    raise ValueError(f"expected an image file, got {type(value).__name__}; {FILE_HINT}")


ImageUpload = Annotated[PIL.Image.Image, WrapValidator(_keep_upload_bytes)]
"""Declared as an image so Swagger UI offers a file picker; arrives in the API as the raw bytes."""
MAX_FACE_ID = 10_000
# Whole numbers only (strict): lax pydantic took true as 1 and 1.0 or 512.0 as ints. Browsers send the text "1",
# which request_parsing.field_value reads as JSON, and BentoML's client sends JSON ints, so both arrive as int.
FaceId = Annotated[int, Field(ge=1, le=MAX_FACE_ID, strict=True, description="1-based, faces counted left to right")]
DestinationFaceId = Annotated[int, Field(ge=0, le=MAX_FACE_ID, strict=True,
                                         description="1-based, faces counted left to right; 0: every face")]
SIMILARITY = ("Cosine similarity of the ArcFace embeddings of the upload's face and the swapped face (re-embedded from "
              "the result at the destination face's landmarks); with the real models above about 0.4 is the same person")


def _boost(value: Any) -> int:
    if int(value) not in BOOST_SIZES:
        raise ValueError(f"pixel_boost must be one of {', '.join(map(str, BOOST_SIZES))}")
    return int(value)


PixelBoost = Annotated[int, AfterValidator(_boost), Field(strict=True, json_schema_extra={"enum": list(BOOST_SIZES)})]
FaceMapText = Annotated[str | None, Field(max_length=400)]
OutputFormat = Literal["jpeg", "png", "webp"]
ClipFormat = Annotated[Literal["mp4", "webp", "gif", "still"], Field(
    description="What a moving destination (a clip) comes back as: mp4 (H.264, with the clip's sound), an animated "
                "webp or gif, or still: its first swapped frame as a picture in output_format")]


def _names(value: Any) -> Any:
    """Accept a JSON list, or one name / comma-separated names as a plain form field."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or None
    return value


DestinationNames = Annotated[list[str] | None, BeforeValidator(_names)]
INSTALLED_ENHANCERS = [spec.key for spec in service_files(None, bento_models.models_dir(Settings.from_env()))
                       if spec.key in ENHANCERS]
"""The enhancers whose files are in the models directory, which the model service loads: Swagger UI offers these."""


def _known(kind: str, known: Collection[str]) -> Callable[[Any], Any]:
    """A validator: the value (or each value of a list) is one of the known names."""
    def check(value: Any) -> Any:
        for name in value if isinstance(value, list) else [value]:
            if name is not None and name not in known:
                raise ValueError(f"{name!r} is not {kind}; known: {', '.join(known)}")
        return value
    return check


Enhancer = Annotated[str | None, AfterValidator(_known("an enhancer", ENHANCERS)),
                     Field(json_schema_extra={"enum": INSTALLED_ENHANCERS} if INSTALLED_ENHANCERS else None)]
"""Swagger UI offers the installed enhancers as a drop-down; one not installed is refused by the engine, naming its
file and how to get it."""
EnhancerBlend = Annotated[int, Field(ge=0, le=100, strict=True)]
EnhancerWeight = Annotated[float, Field(ge=0.0, le=1.0)]
def _item_choices(names: Collection[str]) -> Callable[[dict[str, Any]], None]:
    """A list field's item names as a drop-down: written into the list variant of its `list | None` schema, the one
    BentoML keeps when it flattens the anyOf for Swagger UI."""
    def extra(schema: dict[str, Any]) -> None:
        for variant in schema.get("anyOf", [schema]):
            if variant.get("type") == "array":
                variant["items"] = {"type": "string", "enum": list(names)}
    return extra


MaskTypes = Annotated[list[str] | None, BeforeValidator(_names), AfterValidator(_known("a mask", MASK_TYPES)),
                      Field(max_length=len(MASK_TYPES), json_schema_extra=_item_choices(MASK_TYPES))]
MaskRegions = Annotated[list[str] | None, BeforeValidator(_names), AfterValidator(_known("a face region", REGIONS)),
                        Field(max_length=len(REGIONS), json_schema_extra=_item_choices(REGIONS))]
SWAP_OPTIONS: dict[str, Any] = {
    "source_face_id": (FaceId, 1),
    "destination_face_id": (DestinationFaceId, 1),
    "output_format": (OutputFormat, "jpeg"),
    "clip_format": (ClipFormat, "mp4"),
    "pixel_boost": (PixelBoost, 128),
    "face_map": (FaceMapText, None),
    "color_match": (bool, False),
    "enhancer": (Enhancer, None),
    "enhancer_blend": (EnhancerBlend, 80),
    "enhancer_weight": (EnhancerWeight, DEFAULT_WEIGHT),
    "mask": (MaskTypes, None),
    "mask_regions": (MaskRegions, None),
}
"""The options every swap API takes, declared once: name -> (type, default), in the order Swagger UI lists them."""


def swap_input(name: str, **own: Any) -> type[IODescriptor]:
    """A swap API's input model: the upload, the fields only this API takes, then SWAP_OPTIONS.

    BentoML builds an API's form from one flat model (a nested options model would nest the form fields under one
    name and break every client), so each API's model is generated from the one declaration instead.
    """
    return create_model(name, __base__=IODescriptor, __module__=__name__, image=(ImageUpload, ...), **own,
                        **SWAP_OPTIONS)


SWAP_INPUT = swap_input("SwapInput", destinations=(DestinationNames, None))
"""/swap, /swap_zip and /swap_sheet: every selected destination (all by default)."""
ONE_SWAP_INPUT = swap_input("SwapImageInput", destination=(str, ...))
"""/swap_image: one destination, named."""


class PlacedFaceOut(BaseModel):
    source_face_id: int
    destination_face_id: int
    identity_similarity: float = Field(description=SIMILARITY)


class SwappedImageOut(BaseModel):
    destination_name: str
    image_data: str = Field(description="base64 of the encoded image")
    media_type: str
    width: int
    height: int
    identity_similarity: float | None = Field(description="The lowest identity_similarity of its faces")
    faces: list[PlacedFaceOut] = Field(description="Each face swapped into it: which upload face went into which "
                                                   "destination face, and how well its identity came through (a "
                                                   "clip's: its mean over the frames)")
    frames: int = Field(1, description="1 for a picture; a clip's frame count")
    duration_s: float | None = Field(None, description="How long a clip lasts; null for a picture")


class SkippedOut(BaseModel):
    destination_name: str
    reason: str


class SwapResponse(BaseModel):
    success: bool
    message: str
    faces_detected_in_source: int
    swapped_images: list[SwappedImageOut]
    skipped: list[SkippedOut]


def _a_swap_response() -> SwapResponse:
    raise NotImplementedError(OUTPUT_ONLY)


SWAP_RESPONSE = IODescriptor.from_output(_a_swap_response)
"""/swap's documented output; it answers with swap_json's bytes (a Response), which BentoML sends as they are."""


class FaceOut(BaseModel):
    face_id: int
    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright upload")
    score: float


class DestinationOut(BaseModel):
    name: str
    width: int
    height: int
    faces: int
    reason: str | None = None
    title: str | None = Field(None, description="The display title from the gallery index (gallery.json), if any")
    swappable_faces: list[int] = Field(description="The destination_face_id values this portrait takes")
    moving: bool = Field(False, description="Whether it is a clip (GIF, animated WebP, MP4, WebM): its faces are "
                                            "tracked across frames, and a swap into it comes back as a clip")
    frames: int = Field(1, description="1 for a portrait; a clip's frame count")
    duration_s: float | None = Field(None, description="How long a clip lasts; null for a portrait")

    @classmethod
    def of(cls, destination: Destination) -> DestinationOut:
        """How /destinations and the operator routes describe a portrait or a clip."""
        clip = destination.clip
        return cls(name=destination.name, width=destination.size[0], height=destination.size[1],
                   faces=len(destination.faces), reason=destination.reason, title=destination.info.title,
                   swappable_faces=destination.offered_faces, moving=clip is not None,
                   frames=len(clip.frames) if clip else 1, duration_s=round(clip.timing.seconds, 3) if clip else None)


def error_response(exc: SwaparoonyError) -> JSONResponse:
    """The JSON body every API error has: a message a person can act on, and a short code."""
    return JSONResponse({"error": str(exc), "code": exc.short}, status_code=exc.status)


def answers_errors(api: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | JSONResponse]]:
    """The one error path of the service's APIs: a domain error becomes its status and the error body."""

    @functools.wraps(api)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> T | JSONResponse:
        try:
            return await api(*args, **kwargs)
        except SwaparoonyError as exc:
            return error_response(exc)

    return answer


def _a_picture() -> PIL.Image.Image:
    raise NotImplementedError(OUTPUT_ONLY)


PICTURE = IODescriptor.from_output(_a_picture)


def _an_archive() -> Annotated[Path, ContentType("application/zip")]:
    raise NotImplementedError(OUTPUT_ONLY)


ARCHIVE = IODescriptor.from_output(_an_archive)
"""The output spec of /swap_zip: a ZIP archive of the pictures, answered as bytes (a Response) like the pictures."""
"""The output spec of the picture APIs: an image, which Swagger UI shows. They answer with the encoded bytes
and their real Content-Type (a Response), so BentoML never re-encodes them."""


def upload_bytes(image: object) -> bytes:
    """The uploaded file's bytes: ImageUpload is declared a picture, for Swagger UI's file picker, and holds bytes."""
    if not isinstance(image, bytes):
        raise TypeError(f"the upload arrived as {type(image).__name__}, not bytes")
    return image


def swap_options(fields: Mapping[str, Any]) -> SwapOptions:
    """The engine's options from a swap API's fields (face_map parsed here, so a bad one is a 400 naming it)."""
    if "destination" in fields:
        destinations: tuple[str, ...] = (fields["destination"],)
    else:
        destinations = tuple(fields.get("destinations") or ())
    return SwapOptions(fields["source_face_id"], fields["destination_face_id"], destinations, fields["output_format"],
                       fields["pixel_boost"], parse_face_map(fields["face_map"]), fields["color_match"],
                       fields["enhancer"], fields["enhancer_blend"], fields["enhancer_weight"],
                       _tuple(fields["mask"]), _tuple(fields["mask_regions"]), fields["clip_format"])


def _tuple(names: list[str] | None) -> tuple[str, ...] | None:
    return tuple(dict.fromkeys(names)) if names is not None else None


def similarity_header(similarity: float | None) -> dict[str, str]:
    """X-Identity-Similarity for a picture API, when a face was swapped into it."""
    return {} if similarity is None else {"X-Identity-Similarity": f"{similarity:.4f}"}


def swap_json(outcome: SwapOutcome) -> bytes:
    """The outcome as /swap's JSON (SwapResponse), each picture's base64 written straight in.

    The same document pydantic would write, without decoding the base64 to str and scanning it again to
    serialize it: base64 and JSON were 17% of the API worker's CPU per /swap (py-spy).
    """
    head = {"success": True, "message": f"Successfully swapped face onto {len(outcome.swapped)} images",
            "faces_detected_in_source": outcome.faces_detected_in_source}
    parts = [json.dumps(head)[:-1].encode(), b', "swapped_images": [']
    for index, image in enumerate(outcome.swapped):
        tail = image.described()
        parts += [b", " if index else b"", json.dumps({"destination_name": image.destination_name})[:-1].encode(),
                  b', "image_data": "', pybase64.b64encode(image.data), b'", ', json.dumps(tail)[1:].encode()]
    skipped = [{"destination_name": s.destination_name, "reason": s.reason} for s in outcome.skipped]
    parts += [b'], "skipped": ', json.dumps(skipped).encode(), b"}"]
    return b"".join(parts)
