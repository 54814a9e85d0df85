"""Valid image files built to be costly: scan-bomb JPEGs, chunk-bomb PNGs, huge-but-small PNGs and WebPs (tests and
benchmarks)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def progressive_jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    """An ordinary progressive JPEG (about 10 scans) of smooth random colour."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (max(1, size[1] // 16), max(1, size[0] // 16), 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=85, progressive=True)
    return buffer.getvalue()


def gradient_jpeg(side: int) -> bytes:
    """A progressive JPEG of a smooth gradient: its AC scans are a few bytes each, the cheapest to repeat."""
    ramp = np.linspace(0, 255, side, dtype=np.float32).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(ramp[:, None], side, axis=1)).convert("RGB").save(buffer, "JPEG", quality=85, progressive=True)
    return buffer.getvalue()


def scans(data: bytes) -> list[tuple[int, int]]:
    """Where each scan (its SOS header and entropy-coded data) starts and ends."""
    found, position = [], 2
    while data[position + 1] != 0xD9:  # EOI
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if data[position + 1] == 0xDA:  # SOS: the scan's data runs to the next marker that is not stuffing or RSTn
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
            found.append((position, end))
        position = end
    return found


def scan_bomb(data: bytes, copies: int, largest: bool = False) -> bytes:
    """The JPEG with one of its scans repeated: libjpeg warns about the progression and decodes every copy."""
    start, end = (max if largest else min)(scans(data), key=lambda span: span[1] - span[0])
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[start:end] * copies + data[eoi:]


def marker_bomb_jpeg(data: bytes, markers: int, marker: bytes = b"\xff\xfe\x00\x02") -> bytes:
    """The JPEG with `markers` copies of a marker after its SOI (empty comments by default): Pillow reads each one."""
    return data[:2] + marker * markers + data[2:]


def sixteen_bit_png(size: tuple[int, int], value: int = 40000) -> bytes:
    """A flat 16-bit greyscale PNG: kilobytes on the wire, 2 bytes a pixel decoded."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0]), value, np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def flat_rgba_png(size: tuple[int, int]) -> bytes:
    """A flat RGBA PNG: kilobytes on the wire, 4 bytes a pixel decoded."""
    buffer = io.BytesIO()
    Image.new("RGBA", size, (200, 120, 40, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def flat_webp(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    """A flat lossless WebP: 38 bytes for 16000x2500, 4 bytes a pixel decoded (libwebp's canvases take 8 more)."""
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 120, 40, 128)[: len(mode)]).save(buffer, "WEBP", lossless=True, method=0)
    return buffer.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, data), in order."""
    found, position = [], 8
    while position < len(data):
        length, kind = struct.unpack_from("!I4s", data, position)
        found.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return found


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of these chunks, each with its length and CRC."""
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body)) for kind, body in chunks
    )


def rechunked_png(data: bytes, idat_bytes: int) -> bytes:
    """The same PNG with its image data split into IDAT chunks of idat_bytes (encoders write 8 to 64 KiB)."""
    chunks = png_chunks(data)
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    idats = [(b"IDAT", stream[i : i + idat_bytes]) for i in range(0, len(stream), idat_bytes)]
    return png_from_chunks(chunks[:first] + idats + [chunk for chunk in chunks[first:] if chunk[0] != b"IDAT"])


def chunk_bomb_png(chunks: int, size: tuple[int, int] = (640, 640)) -> bytes:
    """A valid PNG whose image data starts with `chunks` empty IDAT chunks, 12 bytes each: Pillow walks every one."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 200)).save(buffer, "PNG")
    parsed = png_chunks(buffer.getvalue())
    return png_from_chunks(parsed[:1] + [(b"IDAT", b"")] * chunks + parsed[1:])
