"""Request parsing that treats every malformed request as the client's error (400), and never fetches URLs.

BentoML's stock serdes turn Starlette's form errors (an oversized field, a broken multipart body)
into 500s, run `json.loads` on every text field (deep nesting or a 5,000-digit number is a 500),
and download a URL given in place of a file field. These subclasses replace them for the whole
server (installed by http_api/patches.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from _bentoml_impl import serde
from pydantic_core import PydanticCustomError, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from swaparoony.settings import Settings

T = TypeVar("T")
FILE_HINT = "send the photo as a multipart/form-data file field"


@dataclass(frozen=True)
class FormLimits:
    """How many parts a form may have and how long a text field may be."""

    parts: int
    field_bytes: int


def client_error(message: str, field: str | None = None) -> ValidationError:
    """A validation error, which BentoML answers with 400 and this message."""
    loc = (field,) if field else ()
    return ValidationError.from_exception_data(
        "Input", [{"type": PydanticCustomError("invalid_request", message), "loc": loc, "input": None}]
    )


def field_value(text: str) -> Any:
    """A text field as BentoML's client sends it (JSON), else as a browser form sends it (plain text)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, too deep, or a number with too many digits
        return text


class StrictMultipartSerde(serde.MultipartSerde):
    """Multipart parsing: bounded parts, files only as real file parts, unknown fields named; errors are 400s."""

    limits: ClassVar[FormLimits] = FormLimits(parts=Settings.max_form_parts, field_bytes=Settings.max_form_field_bytes)

    @staticmethod
    async def ensure_file(obj: Any) -> UploadFile:
        if isinstance(obj, UploadFile):
            return obj
        raise client_error(f"got a text value where a file belongs; {FILE_HINT}")

    async def parse_request(self, request: Request, cls: type[T]) -> T:
        try:
            form = await request.form(max_files=self.limits.parts, max_fields=self.limits.parts,
                                      max_part_size=self.limits.field_bytes)
        except (MultiPartException, HTTPException) as exc:
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
            raise client_error(f"the multipart body cannot be read: {detail}") from exc
        except (UnicodeDecodeError, KeyError, AssertionError) as exc:
            raise client_error(f"the form cannot be read ({type(exc).__name__}); {FILE_HINT}") from exc
        fields: dict[str, Any] = getattr(cls, "model_fields", {})
        files: set[str] = set(getattr(cls, "multipart_fields", ()))
        unknown = sorted(set(form) - set(fields))
        if unknown:
            raise client_error(f"unknown field(s) {', '.join(unknown)}; this API takes: {', '.join(fields)}")
        data: dict[str, Any] = {}
        for name in form:
            if name in files:
                data[name] = await self.ensure_file(form[name])
                continue
            values = [field_value(await self._text(value, name)) for value in form.getlist(name)]
            data[name] = values[0] if len(values) == 1 else values  # a repeated field is a list (Swagger UI's arrays)
        return cls.model_validate(data)  # type: ignore[attr-defined]

    async def _text(self, value: str | UploadFile, name: str) -> str:
        """A text field's value; Swagger UI sends each one as a small file part of its own."""
        if isinstance(value, str):
            return value
        if (value.size or 0) > self.limits.field_bytes:
            raise client_error(f"field {name} is over {self.limits.field_bytes:,} bytes", name)
        try:
            return (await value.read()).decode()
        except UnicodeDecodeError as exc:
            raise client_error(f"field {name} is not UTF-8 text", name) from exc


class StrictJSONSerde(serde.JSONSerde):
    """JSON parsing that refuses a JSON or URL body for APIs that take an uploaded file."""

    async def parse_request(self, request: Request, cls: type[T]) -> T:
        if getattr(cls, "multipart_fields", None):
            raise client_error(f"this API takes a file upload, not JSON; {FILE_HINT}")
        return await super().parse_request(request, cls)

