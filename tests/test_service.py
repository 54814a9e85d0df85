"""The public API through a real `bentoml serve` on 127.0.0.1, as users and the Python client call it."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import (
    Server, SharedServer, decode, encode, metric, pil_bytes, start_server, stop_server, upload_image, wait_for,
)

UPLOAD = encode(upload_image())


def centres(faces: list[dict]) -> list[float]:
    """Box centres, flattened x, y, x, y, ..."""
    return [v for f in faces for v in ((f["bbox"][0] + f["bbox"][2]) / 2, (f["bbox"][1] + f["bbox"][3]) / 2)]


def post_swap(server: Server, data: dict | None = None, image: bytes = UPLOAD, **kw: object) -> httpx.Response:
    return httpx.post(server.url + "/swap", files={"image": ("me.jpg", image, "image/jpeg")}, data=data or {}, timeout=60, **kw)


def test_destinations_lists_every_file_with_faces_or_a_reason(server: Server) -> None:
    listed = {d["name"]: d for d in httpx.post(server.url + "/destinations").json()}
    assert set(listed) == {"one_face.jpg", "two_faces.png", "no_face.png", "broken.jpg"}
    assert (listed["two_faces.png"]["faces"], listed["two_faces.png"]["width"]) == (2, 1280)
    assert listed["one_face.jpg"]["faces"] == 1 and listed["one_face.jpg"]["reason"] is None
    assert listed["no_face.png"]["faces"] == 0 and "no face" in listed["no_face.png"]["reason"]
    assert listed["broken.jpg"]["faces"] == 0 and "cannot be read" in listed["broken.jpg"]["reason"]


def test_faces_are_numbered_left_to_right(server: Server) -> None:
    faces = httpx.post(server.url + "/faces", files={"image": ("g.jpg", UPLOAD, "image/jpeg")}).json()
    assert [f["face_id"] for f in faces] == [1, 2, 3]
    assert centres(faces) == pytest.approx([160, 320, 320, 160, 480, 320], abs=2)


def test_swap_into_all_usable_destinations_and_report_the_rest(server: Server) -> None:
    body = post_swap(server).json()
    assert body["success"] is True and body["faces_detected_in_source"] == 3
    assert body["message"] == "Successfully swapped face onto 2 images"
    assert [i["destination_name"] for i in body["swapped_images"]] == ["one_face.jpg", "two_faces.png"]
    assert {s["destination_name"] for s in body["skipped"]} == {"no_face.png", "broken.jpg"}
    for item in body["swapped_images"]:
        picture = decode(base64.b64decode(item["image_data"]))
        assert item["media_type"] == "image/jpeg"
        assert picture.shape[:2] == (item["height"], item["width"])


@pytest.mark.parametrize(("output_format", "media_type", "magic"), [
    ("jpeg", "image/jpeg", b"\xff\xd8\xff"), ("png", "image/png", b"\x89PNG"), ("webp", "image/webp", b"RIFF"),
])
def test_swap_image_returns_the_picture_with_its_real_content_type(server: Server, output_format: str, media_type: str, magic: bytes) -> None:
    response = httpx.post(
        server.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
        data={"destination": "one_face.jpg", "output_format": output_format}, timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content.startswith(magic)
    assert decode(response.content).shape == (640, 640, 3)


def swap_two_faces_png(server: Server, source_face_id: int, destination_face_id: int) -> np.ndarray:
    response = httpx.post(
        server.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
        data={"destination": "two_faces.png", "output_format": "png",
              "source_face_id": source_face_id, "destination_face_id": destination_face_id}, timeout=60,
    )
    assert response.status_code == 200, response.text
    return decode(response.content)


def test_only_the_chosen_destination_face_changes(server: Server, gallery_dir: Path) -> None:
    original = cv2.imread(str(gallery_dir / "two_faces.png"))
    swapped = swap_two_faces_png(server, source_face_id=1, destination_face_id=2)
    changed = np.abs(swapped.astype(int) - original).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    # Face 2 is the 128x128 square centred at (896, 640); only pixels around it may change.
    assert xs.min() >= 896 - 100 and xs.max() <= 896 + 100 and ys.min() >= 640 - 100 and ys.max() <= 640 + 100
    face = (slice(640 - 40, 640 + 40), slice(896 - 40, 896 + 40))
    assert np.abs(swapped[face].astype(int) - original[face]).mean() > 10
    assert not changed[:, :700].any()  # face 1 and everything left of face 2 is byte-identical


def test_each_source_face_gives_a_different_result(server: Server) -> None:
    results = [swap_two_faces_png(server, source_face_id=i, destination_face_id=1) for i in (1, 2, 3)]
    face = (slice(600, 680), slice(280, 360))
    means = [r[face].reshape(-1, 3).mean(axis=0) for r in results]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(means[a] - means[b]).max() > 3


def test_face_id_out_of_range_says_how_many_faces_there_are(server: Server) -> None:
    response = post_swap(server, {"source_face_id": 4})
    assert response.status_code == 422
    assert "3 face(s)" in response.json()["error"] and "1 to 3" in response.json()["error"]
    response = post_swap(server, {"destination_face_id": 3})
    assert response.status_code == 422
    assert "two_faces.png" in response.json()["error"]


def test_destination_face_out_of_range_in_some_destinations_is_skipped(server: Server) -> None:
    body = post_swap(server, {"destination_face_id": 2}).json()
    assert [i["destination_name"] for i in body["swapped_images"]] == ["two_faces.png"]
    reasons = {s["destination_name"]: s["reason"] for s in body["skipped"]}
    assert "out of range" in reasons["one_face.jpg"]


def test_selecting_destinations_by_name(server: Server) -> None:
    body = post_swap(server, {"destinations": '["two_faces.png"]'}).json()
    assert [i["destination_name"] for i in body["swapped_images"]] == ["two_faces.png"]
    assert body["skipped"] == []
    response = post_swap(server, {"destinations": "../etc/passwd"})
    assert response.status_code == 404 and "unknown destination" in response.json()["error"]


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5"])
def test_invalid_face_ids_are_400(server: Server, bad_id: str) -> None:
    response = post_swap(server, {"source_face_id": bad_id})
    assert response.status_code == 400
    assert "source_face_id" in response.text


def test_no_face_in_upload_is_422(server: Server) -> None:
    response = post_swap(server, image=encode(np.full((480, 640, 3), 40, np.uint8)))
    assert response.status_code == 422 and "No face" in response.json()["error"]


def test_undecodable_and_unsupported_uploads(server: Server) -> None:
    response = post_swap(server, image=b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert response.status_code == 400 and "JPEG, PNG, WebP, HEIC or AVIF" in response.json()["error"]
    gif = pil_bytes(Image.new("RGB", (64, 64)), "GIF")
    assert post_swap(server, image=gif).status_code == 415
    assert post_swap(server, image=UPLOAD[: len(UPLOAD) // 2]).status_code == 400
    assert post_swap(server).status_code == 200  # and the service still works


def test_exif_rotated_upload_is_read_upright(server: Server) -> None:
    upright = Image.fromarray(cv2.cvtColor(upload_image(), cv2.COLOR_BGR2RGB))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated_upload = pil_bytes(stored, "JPEG", exif=exif.tobytes(), quality=95)
    faces = httpx.post(server.url + "/faces", files={"image": ("r.jpg", rotated_upload, "image/jpeg")}).json()
    assert centres(faces) == pytest.approx([160, 320, 320, 160, 480, 320], abs=3)


def test_python_client(server: Server, tmp_path: Path) -> None:
    upload = tmp_path / "me.jpg"
    upload.write_bytes(UPLOAD)
    with bentoml.SyncHTTPClient(server.url) as client:
        faces = client.faces(image=upload)
        assert [f["face_id"] for f in faces] == [1, 2, 3]
        result = client.swap(image=upload, source_face_id=3, destinations=["one_face.jpg"], output_format="png")
        assert result["swapped_images"][0]["media_type"] == "image/png"
        picture = client.swap_image(image=upload, destination="one_face.jpg")
        assert picture.size == (640, 640)
        assert client.faces_image(image=upload).size == (640, 640)
        assert client.swap_sheet(image=upload, destinations=["one_face.jpg", "two_faces.png"]).size == (2 * 480, 480 + 44)


def batches_larger_than_one(metrics: str, method: str) -> float:
    count = re.search(rf'adaptive_batch_size_count{{method_name="{method}"[^}}]*}} ([\d.]+)', metrics)
    ones = re.search(rf'adaptive_batch_size_bucket{{le="1.0",method_name="{method}"[^}}]*}} ([\d.]+)', metrics)
    return float(count.group(1)) - float(ones.group(1)) if count and ones else 0.0


def test_concurrent_requests_are_batched_on_the_model_service(server: Server) -> None:
    # A batch forms from calls that queue while the previous model run is busy. The generated models
    # run in milliseconds, so allow a few bounded rounds of 16 concurrent requests for that to happen.
    before = httpx.get(server.url + "/metrics").text
    merged = 0.0
    for _ in range(5):
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: post_swap(server), range(16)))
        assert all(r.status_code == 200 for r in responses), [(r.status_code, r.text[:300]) for r in responses if r.status_code != 200]
        after = httpx.get(server.url + "/metrics").text
        merged = sum(batches_larger_than_one(after, m) - batches_larger_than_one(before, m) for m in ("run", "swap_faces"))
        if merged > 0:
            break
    assert merged > 0, "80 requests, 16 at a time, never shared a model batch"
    # ...and a merged batch runs as one call: the batch-1 files were given checked free-batch copies.
    log = server.log()
    assert "det_10g.onnx: runs batches as one call" in log and "inswapper_128.onnx: runs batches as one call" in log
    assert "batch as one call {'detector': True, 'recognizer': True, 'swapper': True, 'watermark': True}" in log


def test_sustained_load_drops_no_model_call(server: Server) -> None:
    # BentoML's client used to close its session to the model service every 100 calls, killing the calls in
    # flight on it; 64 requests are about 190 model calls, so that would show here as dropped connections.
    dropped_before = server.log().count("connection dropped")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post_swap(server, {"destinations": "one_face.jpg"}).status_code, range(64)))
    assert statuses == [200] * 64
    assert server.log().count("connection dropped") == dropped_before


def test_the_log_has_one_access_line_per_request_not_one_per_model_call(server: Server) -> None:
    assert post_swap(server).status_code == 200
    wait_for(lambda: "method=POST,path=/swap," in server.log(), "the API's access line for /swap")
    assert "path=/run" not in server.log() and "path=/swap_faces" not in server.log()


def test_openapi_documents_the_public_routes(server: Server) -> None:
    paths = httpx.get(server.url + "/docs.json").json()["paths"]
    assert {"/swap", "/swap_image", "/faces", "/destinations"} <= set(paths)
    assert httpx.get(server.url + "/").status_code == 200  # Swagger UI


def test_models_missing_starts_and_answers_503_saying_what_to_do(no_models_server: Server) -> None:
    running, empty = no_models_server, no_models_server.workdir / "no_models"
    ready = httpx.get(running.url + "/readyz")
    assert ready.status_code == 503 and "swaparoony models pull" in ready.json()["error"]
    response = post_swap(running)
    assert response.status_code == 503
    message = response.json()["error"]
    assert "swaparoony models pull" in message and str(running.workdir) not in message  # the paths are for the log
    log = running.log()
    for relative in ("buffalo_l/det_10g.onnx", "buffalo_l/w600k_r50.onnx", "inswapper_128.onnx"):
        assert str(empty.resolve() / relative) in log
    assert "non-commercial" in log
    assert httpx.post(running.url + "/destinations").status_code == 503
    assert httpx.get(running.url + "/api/v1/health").json()["models_loaded"] is False
    assert httpx.get(running.url + "/v1/models/swaparoony-face-swap").json()["ready"] is False
    assert running.process.poll() is None  # still serving, no crash loop


def test_faces_image_boxes_and_numbers_each_face_where_faces_finds_it(server: Server) -> None:
    response = httpx.post(server.url + "/faces_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-faces-found"] == "3"
    picture = decode(response.content)
    faces = httpx.post(server.url + "/faces", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}).json()
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face["bbox"])
        edge = picture[(y1 + y2) // 2, x1 - 1 : x1 + 2].astype(int)  # the box's left side, amber in BGR
        assert (np.abs(edge - (40, 220, 255)) < 60).all(axis=1).any(), face


def test_swap_sheet_shows_every_destination_with_skipped_ones_grey(server: Server) -> None:
    response = httpx.post(server.url + "/swap_sheet", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"output_format": "png"}, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    sheet = decode(response.content)
    assert sheet.shape[:2] == (480 + 44, 4 * 480)  # broken.jpg, no_face.png, one_face.jpg, two_faces.png
    grey = [bool((np.abs(sheet[60, i * 480 + 240].astype(int) - 215) < 3).all()) for i in range(4)]
    assert grey == [True, True, False, False]


def test_picture_apis_answer_errors_in_the_error_shape(server: Server) -> None:
    for route, data in (("/swap_sheet", {"destination_face_id": "3"}), ("/swap_image", {"destination": "nope.png"}),
                        ("/faces_image", {"output_format": "gif"})):
        response = httpx.post(server.url + route, files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, data=data, timeout=60)
        assert 400 <= response.status_code < 500 and set(response.json()) == {"error", "code"}, route


def test_metrics_a_person_can_graph(server: Server) -> None:
    assert post_swap(server).status_code == 200
    assert post_swap(server, {"destination_face_id": "9"}).status_code == 422
    def value(series: str) -> float:
        return metric(server, series)

    assert value('swaparoony_requests_total{code="ok",route="/swap",status="200"}') >= 1
    assert value('swaparoony_requests_total{code="face_id_out_of_range",route="/swap",status="422"}') >= 1
    for stage in ("decode", "detect", "swap", "paste", "encode", "mark"):
        assert value(f'swaparoony_stage_seconds_count{{stage="{stage}"}}') >= 1, stage
    assert value("swaparoony_faces_found_count") >= 1 and value('swaparoony_faces_found_bucket{le="3.0"}') >= 1
    assert value("swaparoony_upload_bytes_sum") >= len(UPLOAD)
    assert value('swaparoony_info{version="0.1.0"}') == 1


def test_a_gallery_with_no_usable_destination_is_503_before_any_model_call(
        unready_gallery: tuple[SharedServer, Path]) -> None:
    shared, gallery = unready_gallery
    running = shared.take()  # its gallery becomes a directory: no later test can have it back unreadable
    try:
        if gallery.is_file():
            gallery.unlink()
        gallery.mkdir(exist_ok=True)
        cv2.imwrite(str(gallery / "empty_room.png"), np.full((300, 400, 3), 25, np.uint8))
        wait_for(lambda: "No destination portrait" in httpx.get(running.url + "/readyz").text, "/readyz to say why")
        assert httpx.get(running.url + "/readyz").status_code == 503
        detected = 'swaparoony_model_items_total{model="detector"}'
        detected_before = metric(running, detected)
        response = post_swap(running)
        assert response.status_code == 503 and "No destination portrait has a face" in response.json()["error"]
        assert metric(running, detected) == detected_before  # refused before decoding or detecting
    finally:
        stop_server(running.process)


def test_swap_zip_gives_the_same_pictures_as_files_without_base64(server: Server) -> None:
    response = httpx.post(server.url + "/swap_zip", files={"image": ("selfie.jpg", UPLOAD, "image/jpeg")},
                          data={"source_face_id": "2", "destination_face_id": "2", "output_format": "png"}, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert 'filename="swaparoony.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        index = json.loads(archive.read("results.json"))
        assert [i["file"] for i in index["swapped_images"]] == ["two_faces.png"]
        assert {s["destination_name"] for s in index["skipped"]} == {"broken.jpg", "no_face.png", "one_face.jpg"}
        assert archive.getinfo("two_faces.png").compress_type == zipfile.ZIP_STORED
        picture = archive.read("two_faces.png")
    json_result = post_swap(server, {"source_face_id": "2", "destination_face_id": "2", "output_format": "png"}).json()
    (same,) = [i for i in json_result["swapped_images"] if i["destination_name"] == "two_faces.png"]
    assert np.array_equal(decode(picture), decode(base64.b64decode(same["image_data"])))


def test_a_jpeg_result_is_the_destinations_jpeg_outside_the_face_and_the_picture_within_jpeg_error(
        server: Server, gallery_dir: Path) -> None:
    def picture(output_format: str) -> np.ndarray:
        response = httpx.post(server.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                              data={"destination": "two_faces.png", "output_format": output_format}, timeout=60)
        assert response.status_code == 200
        return decode(response.content)

    jpeg, exact = picture("jpeg"), picture("png")
    destination = cv2.imread(str(gallery_dir / "two_faces.png"))
    destination_jpeg = decode(cv2.imencode(".jpg", destination, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    rows = np.nonzero((exact != destination).any(axis=(1, 2)))[0]
    top, bottom = rows.min() // 16 * 16, -(-(rows.max() + 1) // 16) * 16  # the 16-row bands the face touches
    assert bottom - top < destination.shape[0] // 2
    # The same pixels as a full JPEG encode of the composed picture (the PNG result is that picture, losslessly)...
    full = decode(cv2.imencode(".jpg", exact, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    assert np.array_equal(jpeg, full)  # so inside the face's bands the error is JPEG's own, no more
    # ...and outside the face's bands the destination's own JPEG (the decoder blends chroma across one row at
    # each band edge, so those two rows are left out).
    outside = np.r_[0 : top - 1, bottom + 1 : destination.shape[0]]
    assert np.array_equal(jpeg[outside], destination_jpeg[outside])
