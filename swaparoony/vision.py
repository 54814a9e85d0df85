"""Image bytes in and out, in the process: decode files into BGR frames, encode results."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from .errors import UndecodableImage
from .image_file import DecodeLimits, read_rgb
from .types import Frame

OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def decode_image(data: bytes, max_bytes: int, max_pixels: int, long_side: int | None = None) -> Frame:
    """Decode to an upright 8-bit BGR frame in this process (the service decodes in DecoderPool's processes)."""
    rgb, _ = read_rgb(data, DecodeLimits(max_bytes, max_pixels, long_side))
    return np.ascontiguousarray(rgb[..., ::-1])


def encode_image(frame: Frame, output_format: OutputFormat, jpeg_quality: int) -> bytes:
    """Encode a BGR frame; quality applies to JPEG and WebP."""
    params = {
        "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]),
        "png": (".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]),
        "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]),
    }[output_format]
    ok, buffer = cv2.imencode(params[0], frame, params[1])
    if not ok:
        raise UndecodableImage(f"could not encode the result as {output_format}")
    return buffer.tobytes()
