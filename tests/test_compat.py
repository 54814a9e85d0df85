"""The original Swaparoony API, replayed exactly as its React frontend and scripts send it."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from conftest import BOOTH_ORIGIN, Server, decode, encode, upload_image

UPLOAD = encode(upload_image())
PREDICT = "/v1/models/swaparoony-face-swap:predict"


def assert_original_success(body: dict, faces: int = 3) -> None:
    assert set(body) == {"success", "message", "swapped_images", "faces_detected_in_source"}
    assert body["success"] is True
    assert body["message"] == "Successfully swapped face onto 2 images"
    assert body["faces_detected_in_source"] == faces
    assert [i["destination_name"] for i in body["swapped_images"]] == ["one_face.jpg", "two_faces.png"]
    for item in body["swapped_images"]:
        assert set(item) == {"image_data", "destination_name"}
        data = base64.b64decode(item["image_data"])
        assert data.startswith(b"\xff\xd8\xff") and decode(data) is not None  # JPEG, as the frontend expects


def test_fastapi_swap(server: Server) -> None:
    response = httpx.post(
        server.url + "/api/v1/swap", files={"image": ("selfie.jpg", UPLOAD, "image/jpeg")},
        data={"source_face_id": "2", "destination_face_id": "1"}, timeout=60,
    )
    assert response.status_code == 200
    assert_original_success(response.json())


@pytest.mark.parametrize(("image", "data", "words"), [
    (b"definitely not an image", {}, "JPEG, PNG, WebP, HEIC or AVIF"),
    (encode(np.full((320, 320, 3), 30, np.uint8)), {}, "No face"),
    (UPLOAD, {"source_face_id": "4"}, "use 1 to 3"),
    (UPLOAD, {"source_face_id": "0"}, "source_face_id"),
])
def test_fastapi_swap_errors_are_400_with_detail(server: Server, image: bytes, data: dict, words: str) -> None:
    response = httpx.post(server.url + "/api/v1/swap", files={"image": ("x.jpg", image, "image/jpeg")}, data=data, timeout=60)
    assert response.status_code == 400
    assert set(response.json()) == {"detail"} and words in response.json()["detail"]


def test_fastapi_health(server: Server) -> None:
    assert httpx.get(server.url + "/api/v1/health").json() == {
        "status": "healthy", "models_loaded": True, "destination_images_count": 4,
    }


@pytest.mark.parametrize("prefix", ["", "data:image/jpeg;base64,"])
def test_kserve_predict_as_the_react_frontend_sends_it(server: Server, prefix: str) -> None:
    payload = {"image": prefix + base64.b64encode(UPLOAD).decode(), "source_face_id": 1, "destination_face_id": 1}
    response = httpx.post(server.url + PREDICT, json=payload, headers={"Origin": BOOTH_ORIGIN}, timeout=300)
    assert response.status_code == 200
    assert_original_success(response.json())
    assert response.headers["access-control-allow-origin"] == BOOTH_ORIGIN


@pytest.mark.parametrize(("payload", "status", "error"), [
    ({"image": base64.b64encode(encode(np.full((320, 320, 3), 30, np.uint8))).decode()}, 422, "No face detected"),
    ({"image": base64.b64encode(UPLOAD).decode(), "source_face_id": 9}, 422, "Face id out of range"),
    ({"image": "%%% not base64 %%%"}, 400, "Invalid image"),
    ({"image": base64.b64encode(b"GIF89a nope").decode()}, 400, "Invalid image"),
    ({"source_face_id": 1}, 400, "Bad request"),
    ({"image": base64.b64encode(UPLOAD).decode(), "source_face_id": "one"}, 400, "Bad request"),
])
def test_kserve_predict_errors(server: Server, payload: dict, status: int, error: str) -> None:
    response = httpx.post(server.url + PREDICT, json=payload, timeout=60)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"success", "error", "detail"}
    assert body["success"] is False and body["error"] == error and body["detail"]


def test_kserve_predict_rejects_a_body_that_is_not_json(server: Server) -> None:
    response = httpx.post(server.url + PREDICT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["success"] is False


def test_kserve_model_readiness(server: Server) -> None:
    assert httpx.get(server.url + "/v1/models/swaparoony-face-swap").json() == {"name": "swaparoony-face-swap", "ready": True}


def test_cors_preflight_allows_only_configured_origins(server: Server) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = httpx.options(server.url + PREDICT, headers={"Origin": BOOTH_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == BOOTH_ORIGIN
    denied = httpx.options(server.url + PREDICT, headers={"Origin": "http://evil.example", **preflight})
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers


def test_compatibility_routes_are_in_the_openapi_document(server: Server) -> None:
    paths = httpx.get(server.url + "/docs.json").json()["paths"]
    assert {"/api/v1/swap", "/api/v1/health", "/v1/models/swaparoony-face-swap:predict", "/v1/models/swaparoony-face-swap"} <= set(paths)
    assert "post" in paths["/api/v1/swap"] and "get" in paths["/api/v1/health"]


def test_the_mounted_app_serves_no_second_set_of_docs(server: Server) -> None:
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(server.url + route).status_code == 404, route


def test_the_original_route_stays_lenient_about_extra_fields(server: Server) -> None:
    response = httpx.post(server.url + "/api/v1/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"source_face_id": "1", "client_version": "booth-2.3"}, timeout=60)
    assert response.status_code == 200


@pytest.mark.parametrize(("files", "data", "field"), [
    ({"image": ("me.jpg", UPLOAD, "image/jpeg")}, {"source_face_id": "abc-typed-by-a-person"}, "source_face_id"),
    ({"image": ("me.jpg", UPLOAD, "image/jpeg")}, {"destination_face_id": "two-typed-by-a-person"}, "destination_face_id"),
    ({"picture": ("me.jpg", UPLOAD, "image/jpeg")}, {"source_face_id": "1", "note": "typed-by-a-person"}, "image"),
    (None, {"source_face_id": "1", "note": "typed-by-a-person"}, "image"),
], ids=["source_face_id text", "destination_face_id text", "image under another name", "no file at all"])
def test_fastapi_swap_malformed_fields_are_400_with_a_sentence(server: Server, files: dict | None, data: dict,
                                                               field: str) -> None:
    """Documented: 400 {"detail": "<sentence>"}; FastAPI's own 422 listed each error with the value sent."""
    response = httpx.post(server.url + "/api/v1/swap", files=files, data=data, timeout=60)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and field in body["detail"]
    assert "typed-by-a-person" not in response.text


def test_the_operator_routes_answer_malformed_fields_in_the_services_shape() -> None:
    """They share the compat app's handler; through a server they need the operator token (test_gallery_admin)."""
    import asyncio
    import json

    from fastapi.exceptions import RequestValidationError
    from starlette.requests import Request

    from http_api.compat import malformed_fields

    request = Request({"type": "http", "method": "PUT", "path": "/destinations/new.jpg", "headers": []})
    error = RequestValidationError([{"type": "missing", "loc": ("body", "image"), "msg": "Field required",
                                     "input": "secret-input"}])
    response = asyncio.run(malformed_fields(request, error))
    assert response.status_code == 400
    assert json.loads(response.body) == {"error": "image: Field required.", "code": "invalid_parameter"}
