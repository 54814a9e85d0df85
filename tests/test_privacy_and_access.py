"""Uploads leave no trace on disk or in the log, and an API token keeps everyone else out."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from conftest import API_TOKEN, REPO, Server, encode, upload_image
from http_api.routes import PREDICT_PATH

UPLOAD = encode(upload_image())
TOKEN = API_TOKEN
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8")


def image_files(*roots: Path) -> set[Path]:
    """Every file under the roots that starts like an image, whatever its name."""
    found = set()
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and path.open("rb").read(4).startswith(IMAGE_MAGIC):
                    found.add(path)
            except OSError:
                continue
    return found


@pytest.fixture
def guarded(operator_server: Server) -> Server:
    """A server that needs the API token (the operator's token is set too)."""
    return operator_server


def test_uploads_and_results_are_never_written_or_logged(guarded: Server) -> None:
    big = encode(upload_image(), ".png") + b"\0" * (3 * 1024 * 1024)  # past starlette's 1 MiB spool size
    roots = (guarded.tmpdir, guarded.workdir, REPO)
    before = image_files(*roots)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for upload, name in ((UPLOAD, "me.jpg"), (big, "me.png")):
        for route, data in (("/swap", {"output_format": "png"}), ("/faces", {}), ("/swap_image", {"destination": "one_face.jpg"})):
            response = httpx.post(guarded.url + route, files={"image": (name, upload, "image/jpeg")}, data=data,
                                  headers=headers, timeout=60)
            assert response.status_code == 200, response.text
    assert image_files(*roots) == before
    log = guarded.log()
    encoded = base64.b64encode(UPLOAD).decode()
    for start in range(0, len(encoded) - 64, 4096):
        assert encoded[start : start + 64] not in log


ORIGINAL_ROUTES = ("/api/v1/swap", PREDICT_PATH)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"])
def test_apis_need_the_token(guarded: Server, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, route, kwargs in (
        ("POST", "/swap", {"files": {"image": ("me.jpg", UPLOAD, "image/jpeg")}}),
        ("POST", "/destinations", {}),
        ("POST", "/v1/models/swaparoony-face-swap:predict", {"json": {"image": base64.b64encode(UPLOAD).decode()}}),
        ("POST", "/api/v1/swap", {"files": {"image": ("me.jpg", UPLOAD, "image/jpeg")}}),
    ):
        response = httpx.request(method, guarded.url + route, headers=headers, **kwargs)
        assert response.status_code == 401, route
        body = response.json()
        # Each in the shape its clients parse: the original API's detail (KServe's with success false), else error.
        message = body["detail"] if route in ORIGINAL_ROUTES else body["error"]
        assert "Bearer" in message and body["code"] == "unauthorized", body
        if route == PREDICT_PATH:
            assert body["success"] is False and body["error"] == "Unauthorized"


def test_the_right_token_gets_in_and_probes_stay_open(guarded: Server) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
        ok = httpx.post(guarded.url + "/destinations", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert ok.status_code == 200, scheme
    for route in ("/livez", "/readyz", "/metrics", "/api/v1/health", "/v1/models/swaparoony-face-swap", "/docs.json"):
        assert httpx.get(guarded.url + route).status_code == 200, route


def test_uploads_up_to_the_limit_stay_in_memory() -> None:
    # Starlette spools larger uploads to an unlinked temporary file, which no directory scan can see;
    # the service raises the spool threshold above the upload limit so it never happens.
    import service
    from starlette.formparsers import MultiPartParser

    assert MultiPartParser.spool_max_size > service.serving.settings.max_upload_bytes
