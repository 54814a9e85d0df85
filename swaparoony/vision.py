"""Image bytes in and out: decode uploads safely into BGR frames, encode results."""

from __future__ import annotations

import io
import warnings
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UndecodableImage, UnsupportedImageFormat, UploadTooLarge
from .types import Frame

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_HINT = "Upload a JPEG, PNG or WebP photo."


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> Frame:
    """Decode JPEG/PNG/WebP bytes to an upright 8-bit BGR frame, enforcing the size limits first.

    EXIF orientation is applied; grayscale, palette, alpha (composited on white), CMYK and 16-bit
    images are normalised. An animated WebP yields its first frame.
    """
    if not data:
        raise UndecodableImage(f"The uploaded file is empty. {_HINT}")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"The upload is {len(data):,} bytes; the limit is {max_bytes:,} bytes.")
    image = _open(data, max_pixels)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb8(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"The {image.format} image could not be decoded ({exc}); it may be truncated. {_HINT}") from exc
    return np.ascontiguousarray(rgb[..., ::-1])


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read only the header, so pixel limits are enforced before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadTooLarge(f"The image declares too many pixels; the limit is {max_pixels:,}.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImage(f"The upload is not an image Swaparoony can read. {_HINT}") from exc
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormat(f"{image.format} images are not supported. {_HINT}")
    width, height = image.size
    if width * height > max_pixels:
        raise UploadTooLarge(f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}.")
    if min(width, height) < 16:
        raise UndecodableImage(f"The image is only {width}x{height} pixels; a face needs at least a few dozen. {_HINT}")
    return image


def _to_rgb8(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image)
        scale = 257.0 if pixels.max(initial=0) > 255 else 1.0  # 16-bit range down to 8-bit
        gray = np.clip(pixels / scale, 0, 255).astype(np.uint8)
        return np.stack([gray] * 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


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
