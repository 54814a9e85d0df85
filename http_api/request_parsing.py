"""Request parsing that treats every malformed request as the client's error (400), and never fetches URLs.

BentoML's stock serdes turn starlette's form errors (an oversized field, a broken multipart body)
into 500s, and download a URL given in place of a file field. These subclasses replace them for
the whole server when installed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from _bentoml_impl import serde
from pydantic_core import PydanticCustomError, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

T = TypeVar("T")
FILE_HINT = "send the photo as a multipart/form-data file field"


def client_error(message: str, field: str | None = None) -> ValidationError:
    """A validation error, which BentoML answers with 400 and this message."""
    loc = (field,) if field else ()
    return ValidationError.from_exception_data(
        "Input", [{"type": PydanticCustomError("invalid_request", message), "loc": loc, "input": None}]
    )


class StrictMultipartSerde(serde.MultipartSerde):
    """Multipart parsing: files only as real file parts; form errors are 400s."""

    @staticmethod
    async def ensure_file(obj: Any) -> UploadFile:
        if isinstance(obj, UploadFile):
            return obj
        raise client_error(f"got a text value where a file belongs; {FILE_HINT}")

    async def parse_request(self, request: Request, cls: type[T]) -> T:
        try:
            return await super().parse_request(request, cls)
        except (MultiPartException, HTTPException) as exc:
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
            raise client_error(f"the multipart body cannot be read: {detail}") from exc
        except (UnicodeDecodeError, KeyError, AssertionError) as exc:
            raise client_error(f"the form cannot be read ({type(exc).__name__}); {FILE_HINT}") from exc


class StrictJSONSerde(serde.JSONSerde):
    """JSON parsing that refuses a JSON or URL body for APIs that take an uploaded file."""

    async def parse_request(self, request: Request, cls: type[T]) -> T:
        if getattr(cls, "multipart_fields", None):
            raise client_error(f"this API takes a file upload, not JSON; {FILE_HINT}")
        return await super().parse_request(request, cls)


def install(max_upload_bytes: int) -> None:
    """Use the strict serdes for every request the server parses, and keep uploads in memory."""
    # Starlette spools uploads over 1 MiB to a temporary file; faces must never touch the disk.
    MultiPartParser.spool_max_size = max_upload_bytes + 1024 * 1024
    table: dict[str, Any] = serde.ALL_SERDE  # type: ignore[assignment]
    table["multipart/form-data"] = StrictMultipartSerde
    table["application/x-www-form-urlencoded"] = StrictMultipartSerde
    table["application/json"] = StrictJSONSerde
