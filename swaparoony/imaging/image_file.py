"""Image files to 8-bit BGR pixels, within limits on bytes, pixels, scans and memory.

This module imports only Pillow, NumPy and simplejpeg (libjpeg-turbo), so the decode worker process that runs it
stays small (OpenCV alone maps ~300 MB of address space, which would eat its memory limit).
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np
import simplejpeg
from PIL import AvifImagePlugin, ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import DecodeTooCostly, UndecodableImage, UnsupportedImageFormat, UploadTooLarge

ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "HEIF", "AVIF")
"""MPO is what phones write for portrait-mode JPEGs (a JPEG with more pictures after it): its first picture
is read. HEIF/HEIC is the iPhone's default; AVIF is Pillow's own."""
HINT = "Upload a JPEG, PNG, WebP, HEIC or AVIF photo."
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
"""ISO base media file brands of HEIF images with HEVC inside (AVIF's brands are avif and avis)."""
AvifImagePlugin.DEFAULT_MAX_THREADS = 1  # a worker process decodes one image at a time; processes give the parallelism
MAX_JPEG_SCANS = 64
"""Ordinary progressive JPEGs have about 10 scans. Each scan is a pass over every block of the image,
so a file that repeats a tiny scan thousands of times decodes for minutes from a few hundred KB."""
MAX_JPEG_HEADER_STEPS = 10_000
"""Pillow reads a JPEG's header a marker, and a padding or stray byte, at a time in Python: 2 million empty comments
(7 MiB) held a decode worker for 2 s. Photos have a few dozen markers there (an ICC profile or extended XMP split over
64 KiB segments adds some hundreds at most); the bound is a hundredth of a second of Pillow's work."""
JPEG_PAST_FILL = re.compile(rb"[^\xff]")
"""The first byte after a run of 0xFF fill bytes."""
JPEG_BARE_MARKERS = frozenset({0x00, 0x01, *range(0xD0, 0xDA)})
"""Markers without a length after them: TEM, RSTn, SOI, EOI, and 0xFF00 (a stuffed byte, which Pillow steps over)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHUNK = struct.Struct("!I4s")
MAX_PNG_CHUNKS = 20_000
"""Pillow reads a PNG's chunks one by one in Python, a few microseconds each: 1.7 million empty ones (20 MiB) hold
a decode worker for seconds. Encoders write image data in 8 to 64 KiB chunks, so a 40 MiB PNG in libpng's 8 KiB
has about 5,100; the bound is four times that, under a tenth of a second of Pillow's per-chunk work."""
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBX", "RGBA", "CMYK")
"""Modes Pillow's reduce() takes; others are box-resized (16-bit grey stays 2 bytes a pixel until then)."""
BAND_PIXELS = 1 << 22
"""Pixels made BGR at a time. Pillow's tobytes() holds its output twice (its pieces, then their join) and alpha is
composited into another copy: whole, a 40 MP RGBA destination took 14 bytes a pixel; in bands of 4 MP it takes its
own 4 and the BGR array's 3. Uploads, reduced to under 4 MP but for the widest, are one band, as before."""


@dataclass(frozen=True)
class DecodeLimits:
    """What one decode may cost; long_side=None keeps full resolution (destinations)."""

    max_bytes: int
    max_pixels: int
    long_side: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)


def read_bgr(data: bytes, limits: DecodeLimits) -> tuple[np.ndarray, float]:
    """Decode to an upright HxWx3 uint8 BGR array (OpenCV's order, which the service works in) and the factor from
    its pixels to the file's pixels.

    Uploads (long_side set) are reduced by whole factors while their long side stays at or above
    long_side; JPEGs get that reduction from the decoder itself (DCT scaling), which is also faster.
    EXIF orientation is applied; grayscale, palette, alpha (composited on white), CMYK and 16-bit
    images are normalised; an animated WebP yields its first frame.
    """
    if not data:
        raise UndecodableImage(f"The uploaded file is empty. {HINT}")
    if len(data) > limits.max_bytes:
        raise UploadTooLarge(f"The upload is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes.")
    image = _open(data, limits.max_pixels)
    kind, full_long_side = image.format, max(image.size)
    try:
        if _plain_jpeg(image, limits.long_side):
            return simplejpeg.decode_jpeg(data, colorspace="BGR"), 1.0
        image = _reduced(image, limits.long_side)
        ImageOps.exif_transpose(image, in_place=True)  # not a copy of every upright photo
        bgr = _to_bgr8(image)
    except MemoryError as exc:
        raise DecodeTooCostly(f"The {kind} image needs more memory to decode than the service allows.") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # simplejpeg: ValueError
        raise UndecodableImage(f"The {kind} image could not be decoded ({exc}); it may be truncated. {HINT}") from exc
    return bgr, full_long_side / max(bgr.shape[:2])


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read only the header, so the limits are enforced before any pixel is decoded."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        _read_heif()
    if data.startswith(PNG_SIGNATURE):
        _check_png_chunks(data)  # before Image.open, which walks the chunks up to the first image data
    elif data.startswith(b"\xff\xd8\xff"):
        _check_jpeg_header(data)  # before Image.open, which walks the header up to the first scan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadTooLarge(f"The image declares too many pixels; the limit is {max_pixels:,}.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImage(f"The upload is not an image Swaparoony can read. {HINT}") from exc
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormat(f"{image.format} images are not supported. {HINT}")
    width, height = image.size
    if width * height > max_pixels:
        raise UploadTooLarge(f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}.")
    if min(width, height) < 16:
        raise UndecodableImage(f"The image is only {width}x{height} pixels; a face needs at least a few dozen. {HINT}")
    if image.format in ("JPEG", "MPO"):
        _check_scans(data)
    return image


def _plain_jpeg(image: Image.Image, long_side: int | None) -> bool:
    """A JPEG in YCbCr or grey that needs no reduction and no turning: the usual webcam or booth photo.

    libjpeg-turbo (through simplejpeg) decodes those straight into BGR: the same pixels as Pillow, without Pillow's
    4-byte pixels packed to 3 and joined into bytes, in 3.1 against 6.1 ms for a 640x640 photo. Pillow still
    reads the header first, so the limits above hold; anything else takes Pillow's path below."""
    return (image.format == "JPEG" and image.mode in ("RGB", "L") and _factor(image.size, long_side) == 1
            and image.getexif().get(ExifTags.Base.Orientation, 1) == 1)


def _read_heif() -> None:
    """Teach Pillow HEIF through pillow-heif, on the first HEIF file only: libheif adds 65 MB of address space."""
    import pillow_heif

    pillow_heif.options.DECODE_THREADS = 1
    pillow_heif.options.THUMBNAILS = False
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.register_heif_opener()


def _check_scans(data: bytes) -> None:
    # 0xFF 0xDA (start of scan) cannot occur inside entropy-coded data, where 0xFF is always followed
    # by 0x00 or a restart marker; counting it counts the scans, plus any in embedded thumbnails.
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise DecodeTooCostly(
            f"The JPEG has {scans:,} scans; the limit is {MAX_JPEG_SCANS} (ordinary photos have about 10). "
            "Re-save it as an ordinary JPEG or PNG."
        )


def _check_jpeg_header(data: bytes) -> None:
    """Count the steps of Pillow's walk to the first scan: markers, and padding or stray bytes one by one."""
    position, steps = 2, 0
    while position + 1 < len(data) and steps <= MAX_JPEG_HEADER_STEPS:
        if data[position] != 0xFF:  # stray bytes: Pillow skips them one at a time
            found = data.find(b"\xff", position)
            steps += (len(data) if found < 0 else found) - position
            position = len(data) if found < 0 else found
            continue
        past = JPEG_PAST_FILL.search(data, position)
        fill = (past.start() if past else len(data)) - 1  # the run's last 0xFF, which the marker byte follows
        steps += fill - position  # padding 0xFF bytes, also one at a time
        position, marker = fill, data[fill + 1] if fill + 1 < len(data) else 0xDA
        if marker == 0xDA:  # start of scan: libjpeg-turbo, in C, reads the rest
            return
        steps += 1
        bare = marker in JPEG_BARE_MARKERS
        position += 2 + (0 if bare else int.from_bytes(data[position + 2 : position + 4], "big"))
    if steps > MAX_JPEG_HEADER_STEPS:
        raise DecodeTooCostly(
            f"The JPEG has more than {MAX_JPEG_HEADER_STEPS:,} markers or padding bytes before its image data "
            "(ordinary photos have a few dozen). Re-save it as an ordinary JPEG or PNG."
        )


def _check_png_chunks(data: bytes) -> None:
    """Count the chunks Pillow would walk for the first picture: to IEND, or to an APNG's second frame."""
    position, chunks, seen_data = len(PNG_SIGNATURE), 0, False
    while position + PNG_CHUNK.size <= len(data) and chunks <= MAX_PNG_CHUNKS:
        length, kind = PNG_CHUNK.unpack_from(data, position)
        if kind == b"IEND" or (kind == b"fcTL" and seen_data):
            return
        seen_data = seen_data or kind == b"IDAT"
        position += PNG_CHUNK.size + length + 4  # length and type, data, CRC
        chunks += 1
    if chunks > MAX_PNG_CHUNKS:
        raise DecodeTooCostly(
            f"The PNG has more than {MAX_PNG_CHUNKS:,} chunks (ordinary PNGs have at most a few thousand). "
            "Re-save it as an ordinary JPEG or PNG."
        )


def _reduced(image: Image.Image, long_side: int | None) -> Image.Image:
    """The image decoded at the smallest whole-factor size whose long side is still at least long_side."""
    factor = _factor(image.size, long_side)
    if factor > 1 and image.format in ("JPEG", "MPO"):
        width, height = image.size
        image.draft(image.mode, (-(-width // factor), -(-height // factor)))  # DCT scaling: 1/2, 1/4 or 1/8
    image = _webp_frame(image) if image.format == "WEBP" else _loaded(image)
    factor = _factor(image.size, long_side)
    if factor == 1:
        return image
    if image.mode in REDUCIBLE_MODES:
        return image.reduce(factor)
    return image.resize((image.width // factor, image.height // factor), Image.Resampling.BOX)


def _loaded(image: Image.Image) -> Image.Image:
    image.load()
    return image


def _webp_frame(image: Image.Image) -> Image.Image:
    """The first frame as an image over libwebp's own bytes, its decoder (and the decoder's two canvases) let go.

    Pillow's load() copies the frame libwebp returns into a new image while the decoder still holds its canvases:
    16 bytes a pixel at the peak, 731 MiB of a worker's address space for a 40 MP upload, past the 714 MiB cap. This
    way the peak is the canvases and the frame (12 bytes a pixel, 574 MiB), and afterwards just the frame's 4.
    Pillow 13.0 keeps the decoder as the private _decoder (test_decoder_pool's memory test fails if that changes);
    without it, Pillow's own load()."""
    decoder = getattr(image, "_decoder", None)
    rawmode = getattr(image, "rawmode", None)
    if decoder is None or rawmode not in ("RGBA", "RGBX"):
        return _loaded(image)
    got = decoder.get_next()
    if got is None:  # what Pillow's own load() checks for too
        raise OSError("failed to decode the first frame")
    frame, _ = got
    del decoder
    setattr(image, "_decoder", None)  # the canvases go now, not when the caller lets the file go
    pixels = Image.frombuffer(rawmode, image.size, frame, "raw", rawmode, 0, 1)  # shares, no copy
    pixels.info = dict(image.info)  # EXIF orientation, XMP
    return pixels


def _factor(size: tuple[int, int], long_side: int | None) -> int:
    return max(1, max(size) // long_side) if long_side else 1


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _gray8(pixels: np.ndarray, wide: bool) -> np.ndarray:
    """16-bit (or wider) grey to 8-bit; images that only use 0..255 (not wide) keep their values."""
    if not wide:
        return np.clip(pixels, 0, 255).astype(np.uint8)
    return (np.clip(pixels, 0, 65535) // 257).astype(np.uint8)


def _to_bgr8(image: Image.Image) -> np.ndarray:
    """HxWx3 BGR pixels, made a band of rows at a time so that no full-size copy is made on the way."""
    rows = max(1, BAND_PIXELS // image.width)
    # These modes have one band, so getextrema() is (min, max); Pillow's stubs type it for every mode.
    wide = image.mode in SIXTEEN_BIT_MODES and cast(tuple[float, float], image.getextrema())[1] > 255
    if rows >= image.height:
        return _bgr_band(image, wide)
    bgr = np.empty((image.height, image.width, 3), np.uint8)
    for top in range(0, image.height, rows):
        bgr[top : top + rows] = _bgr_band(image.crop((0, top, image.width, min(top + rows, image.height))), wide)
    return bgr


def _bgr_band(band: Image.Image, wide: bool) -> np.ndarray:
    """Read-only BGR pixels; Pillow packs them in that order itself, in the one pass any RGB array would take."""
    if band.mode in SIXTEEN_BIT_MODES:
        return np.repeat(_gray8(np.asarray(band), wide)[..., None], 3, axis=2)
    if _has_alpha(band):
        rgba = band if band.mode == "RGBA" else band.convert("RGBA")
        band = Image.new("RGB", rgba.size, (255, 255, 255))
        band.paste(rgba, (0, 0), rgba)  # on white: the alpha band is the mask; no full-frame float copies
    elif band.mode not in ("RGB", "RGBX"):  # RGBX: libwebp's opaque pixels, packed to BGR as they are
        band = band.convert("RGB")
    return np.frombuffer(band.tobytes("raw", "BGR"), np.uint8).reshape(band.height, band.width, 3)
