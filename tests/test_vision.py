"""Upload decoding through Pillow's and OpenCV's real codecs: formats, limits and normalisation."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import pil_bytes
from swaparoony.errors import UndecodableImage, UnsupportedImageFormat, UploadTooLarge
from swaparoony.imaging.vision import decode_image, encode_image

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 4_000_000}


def test_exif_orientation_is_applied_for_all_eight_values() -> None:
    base = Image.new("RGB", (60, 40), (0, 0, 0))
    base.paste((255, 0, 0), (0, 0, 10, 10))  # a red marker in the upright top-left corner
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    for orientation, transpose in inverse.items():
        stored = base if transpose is None else base.transpose(transpose)
        exif = Image.Exif()
        exif[0x0112] = orientation
        frame = decode_image(pil_bytes(stored, "PNG", exif=exif.tobytes()), **LIMITS)
        assert frame.shape == (40, 60, 3), orientation
        assert tuple(frame[5, 5]) == (0, 0, 255), orientation  # BGR red, back at the top left


def test_grayscale_palette_alpha_cmyk_and_16_bit_become_8_bit_bgr() -> None:
    gray = decode_image(pil_bytes(Image.new("L", (32, 32), 100), "PNG"), **LIMITS)
    assert gray.shape == (32, 32, 3) and gray.dtype == np.uint8 and (gray == 100).all()
    sixteen = Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16))
    assert (decode_image(pil_bytes(sixteen, "PNG"), **LIMITS) == 255).all()
    half = Image.fromarray(np.full((32, 32), 32896, dtype=np.uint16))  # 128 * 257
    assert (decode_image(pil_bytes(half, "PNG"), **LIMITS) == 128).all()
    transparent = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert (decode_image(pil_bytes(transparent, "PNG"), **LIMITS) == 255).all()  # on white
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.info["transparency"] = 0
    assert (decode_image(pil_bytes(palette, "PNG", transparency=0), **LIMITS) == 255).all()
    cmyk = decode_image(pil_bytes(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    assert cmyk[..., 2].mean() > 200 and cmyk[..., 0].mean() < 60  # red stays red


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
    data = pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert tuple(decode_image(data, **LIMITS)[10, 10]) == (0, 0, 255)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge size: how a decompression bomb starts."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(("data", "error", "words"), [
    (b"", UndecodableImage, "empty"),
    (np.random.default_rng(1).bytes(4096), UndecodableImage, "JPEG, PNG, WebP, HEIC or AVIF"),
    (b"<html><body>hi</body></html>", UndecodableImage, "JPEG, PNG, WebP, HEIC or AVIF"),
    (png_header_only(60000, 60000), UploadTooLarge, "pixels"),
    (png_header_only(3000, 2000), UploadTooLarge, "limit is 4,000,000"),
    (pil_bytes(Image.new("RGB", (1, 1)), "PNG"), UndecodableImage, "1x1"),
    (pil_bytes(Image.new("RGB", (64, 64)), "GIF"), UnsupportedImageFormat, "GIF"),
    (pil_bytes(Image.new("RGB", (64, 64)), "BMP"), UnsupportedImageFormat, "BMP"),
])
def test_bad_uploads_raise_errors_that_say_what_to_do(data: bytes, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        decode_image(data, **LIMITS)


def test_truncated_jpeg_is_undecodable() -> None:
    data = pil_bytes(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    with pytest.raises(UndecodableImage, match="truncated"):
        decode_image(data[: len(data) // 2], **LIMITS)


def test_byte_limit_is_checked_before_decoding() -> None:
    data = pil_bytes(Image.new("RGB", (64, 64)), "PNG")
    with pytest.raises(UploadTooLarge, match="bytes"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=10_000)


@pytest.mark.parametrize("output_format", ["jpeg", "png", "webp"])
def test_encode_round_trips(output_format: str) -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)
    back = decode_image(encode_image(frame, output_format, 95), **LIMITS)
    assert back.shape == frame.shape
    assert np.abs(back.astype(int) - frame).mean() < 3
