"""Image bytes in and out, in the process: decode files into BGR frames, encode results."""

from __future__ import annotations

import io
from typing import Literal

import cv2
from PIL import Image

from ..errors import EncodeFailed
from ..types import Frame
from .image_file import DecodeLimits, read_bgr

OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[OutputFormat, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
"""The picture formats the service writes and its gallery holds: the one table of their media types."""
SUFFIXES: dict[OutputFormat, tuple[str, ...]] = {"jpeg": (".jpg", ".jpeg"), "png": (".png",), "webp": (".webp",)}
"""The file name suffixes each format goes by; a file the service writes takes the first."""


def decode_image(data: bytes, max_bytes: int, max_pixels: int, long_side: int | None = None) -> Frame:
    """Decode to an upright 8-bit BGR frame in this process (the service decodes in DecoderPool's processes)."""
    bgr, _ = read_bgr(data, DecodeLimits(max_bytes, max_pixels, long_side))
    return bgr.copy()  # writable, as frames from the decode processes are


PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
"""zlib level 1 with run-length matching: for a 1280x1280 photo 166 ms and 1.73 MB, against 232 ms and 1.90 MB
at level 3 (benchmarks/RESULTS.md): faster and smaller, because photos rarely repeat long strings."""
WEBP_METHOD = 2
"""libwebp's effort (0-6; OpenCV fixes 4): 97 ms against 201 ms for a 1280x1280 photo at quality 90, for files
2.4% larger. Method 0 is faster still (70 ms) but 11% larger."""


def encode_image(frame: Frame, output_format: OutputFormat, quality: int) -> bytes:
    """Encode a BGR frame; quality applies to JPEG and WebP."""
    if output_format == "webp":  # through Pillow, which exposes libwebp's effort setting
        stream = io.BytesIO()
        Image.fromarray(frame[..., ::-1]).save(stream, "WEBP", quality=quality, method=WEBP_METHOD)
        return stream.getvalue()
    params = PNG_PARAMS if output_format == "png" else [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, encoded = cv2.imencode(SUFFIXES[output_format][0], frame, params)
    if not ok:
        raise EncodeFailed(f"could not encode the result as {output_format}")
    return encoded.tobytes()
