"""Reading image files within budget: decoding near the size needed, 16-bit, and scan and chunk bombs refused unread."""

from __future__ import annotations

import io
import time

import numpy as np
import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageOps

from conftest import pil_bytes
from hostile_files import (chunk_bomb_png, marker_bomb_jpeg, png_chunks, png_from_chunks, progressive_jpeg,
                           rechunked_png, scan_bomb, sixteen_bit_png)
from swaparoony.errors import DecodeTooCostly, UploadTooLarge
from swaparoony.imaging.image_file import (BAND_PIXELS, MAX_JPEG_HEADER_STEPS, MAX_JPEG_SCANS, MAX_PNG_CHUNKS, DecodeLimits,
                                  read_bgr)

UPLOAD = DecodeLimits(max_bytes=50_000_000, max_pixels=40_000_000, long_side=1920)
FULL = DecodeLimits(max_bytes=50_000_000, max_pixels=40_000_000)


def test_a_phone_sized_jpeg_upload_is_decoded_at_half_size_by_the_decoder() -> None:
    photo = np.zeros((3024, 4032, 3), np.uint8)
    photo[:, :2016] = (250, 30, 30)  # left half red
    bgr, scale = read_bgr(pil_bytes(Image.fromarray(photo), "JPEG", quality=90), UPLOAD)
    assert bgr.shape == (1512, 2016, 3) and scale == 2.0
    assert bgr[700, 500, 2] > 200 and bgr[700, 1500, 2] < 40  # still the same picture, red in BGR's last channel


def test_a_huge_16_bit_png_upload_is_reduced_and_scaled_to_8_bit() -> None:
    bgr, scale = read_bgr(sixteen_bit_png((6300, 6300), value=40000), UPLOAD)
    assert bgr.shape == (2100, 2100, 3) and scale == 3.0
    assert (bgr == 40000 // 257).all()


def test_destinations_keep_their_full_size() -> None:
    bgr, scale = read_bgr(pil_bytes(Image.new("RGB", (4032, 3024), (10, 20, 30)), "PNG"), FULL)
    assert bgr.shape == (3024, 4032, 3) and scale == 1.0


def test_a_scan_bomb_is_refused_without_decoding() -> None:
    ordinary = progressive_jpeg((1024, 1024))
    assert read_bgr(ordinary, UPLOAD)[0].shape == (1024, 1024, 3)
    bomb = scan_bomb(ordinary, copies=3000)
    with pytest.raises(DecodeTooCostly, match=f"3,010 scans; the limit is {MAX_JPEG_SCANS}"):
        read_bgr(bomb, UPLOAD)


def test_a_png_of_millions_of_chunks_is_refused_before_pillow_walks_them() -> None:
    bomb = chunk_bomb_png(1_700_000)  # 19.5 MiB; Pillow takes seconds over its chunks
    started = time.perf_counter()
    with pytest.raises(DecodeTooCostly, match=f"more than {MAX_PNG_CHUNKS:,} chunks"):
        read_bgr(bomb, UPLOAD)
    assert time.perf_counter() - started < 1  # about 10 ms: it stops counting at the bound


def test_pngs_in_small_chunks_and_long_animations_are_still_read() -> None:
    picture = Image.effect_noise((320, 240), 50).convert("RGB")
    small_chunks = rechunked_png(pil_bytes(picture, "PNG"), idat_bytes=16)  # 12,000 chunks, far smaller than usual
    assert np.array_equal(read_bgr(small_chunks, UPLOAD)[0], np.asarray(picture)[..., ::-1])
    # An APNG's later frames are never read (Pillow stops at the second frame's fcTL), so they are not counted.
    animation = png_chunks(pil_bytes(picture, "PNG", save_all=True, append_images=[picture.rotate(90)]))
    second_frame = [i for i, (kind, _) in enumerate(animation) if kind == b"fcTL"][1]
    padding = [(b"prIv", b"")] * (MAX_PNG_CHUNKS + 1)
    long = png_from_chunks(animation[: second_frame + 1] + padding + animation[second_frame + 1 :])
    assert np.array_equal(read_bgr(long, UPLOAD)[0], np.asarray(picture)[..., ::-1])


@pytest.mark.parametrize("marker", [b"\xff\xfe\x00\x02", b"\xff", b"\xff\xd0"], ids=["comments", "padding", "restarts"])
def test_a_jpeg_header_of_millions_of_markers_is_refused_before_pillow_walks_it(marker: bytes) -> None:
    photo = pil_bytes(Image.new("RGB", (640, 480), (90, 120, 200)), "JPEG")
    bomb = marker_bomb_jpeg(photo, 19_000_000 // len(marker), marker)  # 19 MB
    started = time.perf_counter()
    with pytest.raises(DecodeTooCostly, match=f"more than {MAX_JPEG_HEADER_STEPS:,} markers or padding bytes"):
        read_bgr(bomb, UPLOAD)  # Pillow takes seconds over it
    assert time.perf_counter() - started < 1


def test_jpegs_with_large_profiles_and_metadata_are_still_read() -> None:
    # An ICC profile over 64 KiB is split across APP2 segments; EXIF, comments and a little padding are ordinary.
    picture = _picture((320, 240), alpha=False)
    profile = b"\0" * (2 * 1024 * 1024)  # 33 segments: Pillow writes it as it is given
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    data = pil_bytes(picture, "JPEG", quality=90, icc_profile=profile, exif=exif.tobytes(), comment=b"booth 3")
    data = data[:2] + b"\xff" * 16 + data[2:]
    assert np.array_equal(read_bgr(data, UPLOAD)[0], _pillow_bgr(data))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_have_the_same_pixel_limit(fmt: str) -> None:
    pillow_heif.register_heif_opener()
    data = pil_bytes(Image.new("RGB", (640, 480), (90, 120, 200)), fmt)
    assert read_bgr(data, UPLOAD)[0].shape == (480, 640, 3)
    with pytest.raises(UploadTooLarge, match="640x480"):
        read_bgr(data, DecodeLimits(max_bytes=10_000_000, max_pixels=100_000))


def test_an_mpo_is_read_as_its_first_picture() -> None:
    first, second = Image.new("RGB", (640, 480), (250, 0, 0)), Image.new("RGB", (640, 480), (0, 0, 250))
    bgr, _ = read_bgr(pil_bytes(first, "MPO", save_all=True, append_images=[second]), UPLOAD)
    assert bgr[240, 320, 2] > 200 and bgr[240, 320, 0] < 50


def _pillow_bgr(data: bytes) -> np.ndarray:
    """What Pillow alone makes of a file: upright, RGB, in BGR order."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(image.convert("RGB"))[..., ::-1]


def _exif_rotated(photo: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways, shown turned 90 degrees clockwise
    return pil_bytes(photo, "JPEG", quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("kind", ["colour", "grey", "cmyk", "exif-rotated"])
def test_every_kind_of_jpeg_gives_the_pixels_pillow_gives(kind: str) -> None:
    # Plain colour and grey JPEGs take libjpeg-turbo's direct path to BGR; the others Pillow's. Either way a
    # person's photo must come out the same.
    photo = Image.effect_noise((320, 240), 50).convert("RGB").resize((320, 240))
    data = {"colour": lambda: pil_bytes(photo, "JPEG", quality=90),
            "grey": lambda: pil_bytes(photo.convert("L"), "JPEG", quality=90),
            "cmyk": lambda: pil_bytes(photo.convert("CMYK"), "JPEG", quality=90),
            "exif-rotated": lambda: _exif_rotated(photo)}[kind]()
    bgr, scale = read_bgr(data, UPLOAD)
    assert scale == 1.0 and bgr.shape == ((320, 240, 3) if kind == "exif-rotated" else (240, 320, 3))
    assert np.array_equal(bgr, _pillow_bgr(data))


def _on_white(data: bytes) -> np.ndarray:
    """What Pillow alone makes of a file with alpha: upright, composited on white in one piece, BGR."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGBA")
    white = Image.new("RGB", image.size, (255, 255, 255))
    white.paste(image, (0, 0), image)
    return np.asarray(white)[..., ::-1]


def _picture(size: tuple[int, int], alpha: bool) -> Image.Image:
    """Smooth colour (and, with alpha, a smooth transparency that runs from clear to opaque)."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 256, (8, 8, 4 if alpha else 3), np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("kind", ["lossy", "lossless", "lossless-alpha", "exif-rotated", "animated"])
def test_webp_gives_the_pixels_pillow_gives(kind: str) -> None:
    # WebP frames come straight from libwebp's buffer (no copy through Pillow's load()); a person sees the same.
    picture = _picture((320, 240), alpha=kind == "lossless-alpha")
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    data = {"lossy": lambda: pil_bytes(picture, "WEBP", quality=90),
            "lossless": lambda: pil_bytes(picture, "WEBP", lossless=True),
            "lossless-alpha": lambda: pil_bytes(picture, "WEBP", lossless=True),
            "exif-rotated": lambda: pil_bytes(picture, "WEBP", quality=90, exif=exif.tobytes()),
            "animated": lambda: pil_bytes(picture, "WEBP", save_all=True, append_images=[picture.rotate(180)])}[kind]()
    bgr, scale = read_bgr(data, FULL)
    assert scale == 1.0 and bgr.shape == ((320, 240, 3) if kind == "exif-rotated" else (240, 320, 3))
    assert np.array_equal(bgr, _on_white(data))


def test_images_made_bgr_in_bands_match_the_whole_image() -> None:
    side = 2100  # 4.4 MP: two bands
    assert side * side > BAND_PIXELS
    rgba = pil_bytes(_picture((side, side), alpha=True), "PNG")
    assert np.array_equal(read_bgr(rgba, FULL)[0], _on_white(rgba))
    # 16-bit grey is scaled to 8 bits or kept by what the whole image holds, not what each band holds.
    grey = np.full((side, side), 200, np.uint16)
    grey[-1, -1] = 40000  # the last band alone uses the 16 bits
    bgr, _ = read_bgr(pil_bytes(Image.fromarray(grey), "PNG"), FULL)
    assert bgr[0, 0, 0] == 200 // 257 and bgr[-1, -1, 0] == 40000 // 257
