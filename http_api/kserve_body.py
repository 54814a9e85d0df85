"""The KServe route's JSON body: refused by counting bytes when it cannot be the flat object the route takes,
else parsed and its base64 decoded in a thread.

`json.loads` holds the event loop for as long as it runs: 28 MB of `[[],[],...]` took 4.3 s and about
900 MiB of lists, and nine such bodies kept /livez silent for 11 s. The route's body is a flat object (an
image string, two small ints), so a body that does not open with `{`, or holds more structure than a
flat object of a few members, is refused before a single object is made.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import re
from typing import Any

import pybase64
from starlette.requests import Request

from swaparoony.errors import BadRequest, UndecodableImage

OBJECT_START = re.compile(rb"[ \t\r\n]*\{")
STRUCTURE = (b"{", b"[", b":", b",")
"""Every JSON value past the first is opened by `{` or `[` or follows a `:` or `,`: their count bounds the values."""
MAX_STRUCTURE = 64
"""The frontend's body has 7 (a data URL's `:` and `,` among them, since strings are counted too); a few extra
members stay welcome, a bomb of millions of values is refused."""
WHITESPACE = b" \t\r\n"
DATA_URL_PREFIX = re.compile(r"data:image/[\w.+-]+;base64,", re.IGNORECASE)
SHAPE = 'Send a JSON object like {"image": "<base64 JPEG>", "source_face_id": 1, "destination_face_id": 1}.'


def check_start(body: bytes) -> None:
    """Refuse at once a body that is not a JSON object (an array, a string, a number, nothing)."""
    if not OBJECT_START.match(body):
        raise BadRequest(f"The request body is not a JSON object. {SHAPE}")


def check_structure(body: bytes) -> None:
    """Refuse a body with more brackets, colons and commas than a flat object of a few members has (C speed)."""
    count = 0
    for byte in STRUCTURE:
        count += body.count(byte)
        if count > MAX_STRUCTURE:
            raise BadRequest(f"The request body holds more than {MAX_STRUCTURE} JSON brackets, colons and commas; this "
                             f"route takes one flat object. {SHAPE}")


def parse(body: bytes) -> tuple[bytes, dict[str, Any]]:
    """The decoded image and the whole object, from a body check_start has let through; runs in a thread."""
    check_structure(body)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or a number too long
        raise BadRequest(f"The request body is not valid JSON ({type(exc).__name__}). {SHAPE}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
        raise BadRequest(SHAPE)
    return decode_image(payload["image"]), payload


def decode_image(text: str) -> bytes:
    """The image field's bytes: base64, with or without a data URL prefix, in one line or wrapped in lines."""
    text = text.strip()
    prefix = DATA_URL_PREFIX.match(text)
    encoded = text[prefix.end():] if prefix else text
    try:
        return pybase64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # what the `base64` command prints: 76-character lines ending in \n (or \r\n)
        return pybase64.b64decode(encoded.encode("ascii").translate(None, WHITESPACE), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableImage("The image field is not valid base64.") from exc


async def read(request: Request) -> tuple[bytes, dict[str, Any]]:
    """The decoded image and the object; a non-object is refused here, the rest is checked and parsed off the loop."""
    # Starlette's request.body() ends the stream with b"" and joins: a second copy of a 28 MB body, on the loop.
    body = b"".join([chunk async for chunk in request.stream() if chunk])  # one chunk: that chunk, not a copy
    check_start(body)
    return await asyncio.to_thread(parse, body)
