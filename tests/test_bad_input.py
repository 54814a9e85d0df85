"""Every kind of bad upload and parameter gets a 4xx with a message, and the service keeps serving."""

from __future__ import annotations

import struct
import zlib

import httpx
import numpy as np
import pillow_heif
import pytest
from PIL import Image

from conftest import Server, encode, pil_bytes, upload_image

UPLOAD = encode(upload_image())


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A few hundred bytes whose header declares 3.6 gigapixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b"")


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(upload_image()[..., ::-1]), Image.new("RGB", (640, 640), (0, 0, 0))]
    return pil_bytes(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def phone(fmt: str) -> bytes:
    """The upload as a phone writes it: an MPO (portrait mode: a second picture after the first), HEIC or AVIF."""
    picture = Image.fromarray(upload_image()[..., ::-1])
    if fmt == "MPO":
        return pil_bytes(picture, "MPO", save_all=True, append_images=[Image.new("RGB", picture.size)])
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    return pil_bytes(picture, fmt, quality=90)


def palette_with_transparency() -> bytes:
    image = Image.fromarray(upload_image()[..., ::-1]).convert("P", palette=Image.Palette.ADAPTIVE)
    return pil_bytes(image, "PNG", transparency=0)


CORPUS: dict[str, tuple[bytes, set[int]]] = {
    "zero bytes": (b"", {400}),
    "random bytes": (np.random.default_rng(5).bytes(20_000), {400}),
    "truncated jpeg": (UPLOAD[: len(UPLOAD) // 3], {400}),
    "decompression bomb png": (bomb_png(), {413}),
    "1x1": (pil_bytes(Image.new("RGB", (1, 1)), "PNG"), {400}),
    "30000x10": (pil_bytes(Image.new("RGB", (30000, 10)), "PNG"), {400}),
    "html named .jpg": (b"<!doctype html><html><body><img src=x></body></html>", {400}),
    "svg named .jpg": (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", {400}),
    "animated gif": (animated("GIF"), {415}),
    "bmp": (pil_bytes(Image.new("RGB", (64, 64)), "BMP"), {415}),
    # Accepted formats with odd encodings: decoded and swapped, or 422 when they hold no face.
    "cmyk jpeg": (pil_bytes(Image.fromarray(upload_image()[..., ::-1]).convert("CMYK"), "JPEG"), {200}),
    "16-bit png": (pil_bytes(Image.fromarray((upload_image()[..., 0].astype(np.uint16) * 257)), "PNG"), {200, 422}),
    "palette png with transparency": (palette_with_transparency(), {200}),
    "animated webp (first frame)": (animated("WEBP"), {200}),
    "grayscale jpeg": (pil_bytes(Image.fromarray(upload_image()[..., 1]), "JPEG"), {200}),
    "phone mpo (portrait mode)": (phone("MPO"), {200}),
    "iphone heic": (phone("HEIF"), {200}),
    "avif": (phone("AVIF"), {200}),
    "tiff": (pil_bytes(Image.new("RGB", (64, 64)), "TIFF"), {415}),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_uploads(server: Server, name: str) -> None:
    data, expected = CORPUS[name]
    response = httpx.post(server.url + "/swap", files={"image": ("photo.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code in expected, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        message = response.json()["error"]
        assert len(message) > 20 and "unexpected error" not in message
    if response.status_code == 415:
        assert "JPEG, PNG, WebP, HEIC or AVIF" in message  # says what is accepted
    assert httpx.post(server.url + "/swap", files={"image": ("ok.jpg", UPLOAD, "image/jpeg")}, timeout=60).status_code == 200


@pytest.mark.parametrize(("data", "words"), [
    ({"source_face_id": "0"}, "source_face_id"),
    ({"source_face_id": "-1"}, "source_face_id"),
    ({"source_face_id": str(10**9)}, "source_face_id"),
    ({"destination_face_id": "abc"}, "destination_face_id"),
    ({"destination_face_id": "1.5"}, "destination_face_id"),
    ({"output_format": "gif"}, "output_format"),
    ({"destinations": "../../etc/passwd"}, "unknown destination"),
    ({"destinations": '["nope.png"]'}, "unknown destination"),
])
def test_bad_parameters(server: Server, data: dict, words: str) -> None:
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, data=data, timeout=60)
    assert 400 <= response.status_code < 500 and words in response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["code"]  # one error shape, a sentence a person can read


def test_missing_image_field(server: Server) -> None:
    response = httpx.post(server.url + "/swap", data={"source_face_id": "1"}, files={"other": ("x", b"y")})
    assert response.status_code == 400 and "image" in response.text


def test_wrong_content_type(server: Server) -> None:
    for body, content_type in ((b'{"image": "abc"}', "application/json"), (b"source_face_id=1", "application/x-www-form-urlencoded"),
                               (UPLOAD, "image/jpeg"), (b"hello", "text/plain")):
        response = httpx.post(server.url + "/swap", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, (content_type, response.status_code, response.text[:200])


def test_oversized_form_field(server: Server) -> None:
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destinations": "x" * (2 * 1024 * 1024)}, timeout=60)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])


def test_upload_over_the_byte_limit_is_413(server: Server) -> None:
    noise = (np.random.default_rng(2).integers(0, 255, (3000, 2400, 3), dtype=np.uint8))
    big = encode(noise, ".png")  # about 21 MiB of incompressible pixels
    assert len(big) > 20 * 1024 * 1024
    response = httpx.post(server.url + "/swap", files={"image": ("big.png", big, "image/png")}, timeout=60)
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_a_url_in_place_of_the_file_is_refused_and_never_fetched(server: Server) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    hits: list[bytes] = []

    def watch() -> None:
        try:
            connection, _ = listener.accept()
            hits.append(connection.recv(100))
        except OSError:
            pass

    thread = threading.Thread(target=watch)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/face.jpg"
    as_field = httpx.post(server.url + "/swap", files={"image": (None, url)})  # a text part, not a file
    as_json = httpx.post(server.url + "/swap", content=url.encode(), headers={"Content-Type": "application/json"})
    thread.join()
    listener.close()
    assert as_field.status_code == 400 and "file" in as_field.text
    assert as_json.status_code == 400 and "file" in as_json.text
    assert hits == []


@pytest.mark.parametrize("typo", ["sourc_face_id", "pixelboost"])
def test_an_unknown_field_is_named_not_ignored(server: Server, typo: str) -> None:
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, data={typo: "2"}, timeout=60)
    assert response.status_code == 400
    message = response.json()["error"]
    assert typo in message and "source_face_id" in message and "output_format" in message


def test_malformed_requests_are_one_warning_line_without_the_input(server: Server) -> None:
    secret = "sourcefaceid-typed-by-a-person"
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"source_face_id": secret}, timeout=60)
    assert response.status_code == 400
    lines = [line for line in server.log().splitlines() if "malformed request POST /swap" in line and "source_face_id" in line]
    assert lines and "[WARNING]" in lines[-1]
    assert secret not in server.log()  # neither the value nor a traceback quoting it


@pytest.mark.parametrize(("route", "data", "field"), [
    ("/swap", {"source_face_id": "true"}, "source_face_id"),
    ("/swap", {"source_face_id": "1.0"}, "source_face_id"),
    ("/swap", {"destination_face_id": "false"}, "destination_face_id"),
    ("/swap", {"pixel_boost": "512.0"}, "pixel_boost"),
    ("/swap_image", {"destination": "one_face.jpg", "destination_face_id": "1.0"}, "destination_face_id"),
    ("/swap_zip", {"pixel_boost": "true"}, "pixel_boost"),
])
def test_face_ids_and_pixel_boost_are_whole_numbers_only(server: Server, route: str, data: dict, field: str) -> None:
    """Lax parsing took true as 1 and 1.0 or 512.0 as whole numbers."""
    response = httpx.post(server.url + route, files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, data=data, timeout=60)
    assert response.status_code == 400, response.text[:300]
    assert field in response.json()["error"]


def test_whole_numbers_sent_as_form_text_stay_accepted(server: Server) -> None:
    """What Swagger UI and a browser form send: the text "2"."""
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"source_face_id": "2", "destination_face_id": "1", "pixel_boost": "256"}, timeout=120)
    assert response.status_code == 200, response.text[:300]
