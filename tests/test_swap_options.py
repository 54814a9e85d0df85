"""Pixel boost, the identity score, every face, face maps and color match, through a real server.

The server runs identity-faithful generated models (generated_models.recognizer_model): a face's identity
is its colour, the swap carries it over, so which identity landed where can be measured.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest

from conftest import Server, decode, encode, metric, start_server, stop_server, upload_image
from generated_models import FACE_SIDE, draw_faces, write_models
from swaparoony.models.scrfd import faces_from_detections, letterbox
from swaparoony.imaging.face_geometry import align_matrix, crop_face
from swaparoony.models.arcface import FaceRecognizer
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.types import Face

UPLOAD = encode(upload_image())
PATTERN_CENTRE = (960, 960)
"""The pattern portrait: 1920x1920, letterboxed by 3, one face 192 px wide: a 128 px crop halves its detail."""
THREE = [(192, 320), (320, 320), (448, 320)]
TWO = [(192, 320), (448, 320)]


def pattern_portrait() -> np.ndarray:
    """One large face covered in a one-pixel checkerboard, the finest detail a portrait can hold."""
    image = draw_faces((1920, 1920), [PATTERN_CENTRE], scale=3.0, colours=[(200, 205, 215)])
    half = FACE_SIDE * 3 // 2
    (cx, cy) = PATTERN_CENTRE
    face = image[cy - half : cy + half, cx - half : cx + half].astype(int)
    checker = (np.indices(face.shape[:2]).sum(axis=0) % 2 * 2 - 1)[..., None] * 35
    image[cy - half : cy + half, cx - half : cx + half] = np.clip(face + checker, 0, 255)
    return image


@pytest.fixture(scope="module")
def faithful_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models(tmp_path_factory.mktemp("faithful_models"), identity_faithful=True)


@pytest.fixture(scope="module")
def portraits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("portraits")
    cv2.imwrite(str(directory / "pattern.png"), pattern_portrait())
    cv2.imwrite(str(directory / "three.png"), draw_faces((640, 640), THREE))
    cv2.imwrite(str(directory / "two.png"), draw_faces((640, 640), TWO))
    return directory


@pytest.fixture(scope="module")
def faithful(tmp_path_factory: pytest.TempPathFactory, faithful_models: Path, portraits: Path) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("faithful"), {
        "SWAPAROONY_MODELS_DIR": str(faithful_models), "SWAPAROONY_DESTINATIONS_DIR": str(portraits),
        "SWAPAROONY_REBATCH": "on", "SWAPAROONY_CONTENT_CREDENTIALS": "xmp"})
    yield running
    stop_server(running.process)


@pytest.fixture(scope="module")
def models(faithful_models: Path) -> LoadedModels:
    """The same generated files in this process, to check what the server says independently."""
    return LoadedModels.load(faithful_models)


def swap(server: Server, **fields: str) -> httpx.Response:
    response = httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"output_format": "png", **fields}, timeout=120)
    assert response.status_code == 200, response.text
    return response


def pictures(response: httpx.Response) -> dict[str, tuple[np.ndarray, dict]]:
    return {item["destination_name"]: (decode(base64.b64decode(item["image_data"])), item)
            for item in response.json()["swapped_images"]}


def only_picture(response: httpx.Response) -> np.ndarray:
    ((picture, _),) = pictures(response).values()
    return picture


def faces_in(models: LoadedModels, frame: np.ndarray) -> list[Face]:
    canvas, scale = letterbox(frame)
    (rows,) = models.run("detector", [canvas])
    return faces_from_detections(rows, scale)


def identities(models: LoadedModels, frame: np.ndarray) -> np.ndarray:
    """Each face's normalised embedding, left to right, aligned at its own landmarks."""
    crops = [crop_face(frame, align_matrix(face.landmarks, 112), 112) for face in faces_in(models, frame)]
    return np.stack(models.of(FaceRecognizer)(crops))


def swapper_runs(server: Server) -> tuple[float, float]:
    return (metric(server, 'swaparoony_model_items_total{model="swapper"}'),
            metric(server, 'swaparoony_model_calls_total{model="swapper"}'))


@pytest.mark.parametrize(("boost", "tiles"), [(128, 1), (256, 4), (512, 16)])
def test_a_boost_swaps_its_tiles_in_one_batch_call(faithful: Server, boost: int, tiles: int) -> None:
    items, calls = swapper_runs(faithful)
    response = httpx.post(faithful.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "pattern.png", "pixel_boost": str(boost)}, timeout=120)
    assert response.status_code == 200, response.text
    assert swapper_runs(faithful) == (items + tiles, calls + 1)


def detail_kept(result: np.ndarray, original: np.ndarray) -> float:
    """Correlation of the face's finest detail (a Laplacian) in the result with the portrait's own."""
    half = FACE_SIDE * 3 // 2 - 30  # inside the face, where the blend mask is 1
    (cx, cy) = PATTERN_CENTRE
    window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
    fine = [cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F)[window].ravel()
            for image in (result, original)]
    return float(np.corrcoef(*fine)[0, 1])


def test_a_boost_keeps_the_portraits_fine_detail_in_place_and_the_rest_unchanged(faithful: Server) -> None:
    original = pattern_portrait()
    kept = {}
    for boost in (128, 256, 512):
        (result, item), = pictures(swap(faithful, destinations="pattern.png", pixel_boost=str(boost))).values()
        kept[boost] = detail_kept(result, original)
        outside = np.ones(original.shape[:2], bool)
        outside[PATTERN_CENTRE[1] - 240 : PATTERN_CENTRE[1] + 240, PATTERN_CENTRE[0] - 240 : PATTERN_CENTRE[0] + 240] = False
        assert np.array_equal(result[outside], original[outside]), boost  # every pixel outside the face, as it was
        assert item["faces"] == [{"source_face_id": 1, "destination_face_id": 1,
                                  "identity_similarity": item["identity_similarity"]}]
    # Each tile back where it came from: the checkerboard survives at 256 and 512, a 128 crop blurs it away.
    assert kept[256] > kept[128] + 0.2 and kept[512] > kept[128] + 0.2, kept


def test_the_identity_score_is_the_asked_for_faces_and_checks_out(faithful: Server, models: LoadedModels) -> None:
    upload = identities(models, decode(UPLOAD))
    for source in (1, 2, 3):
        (result, item), = pictures(swap(faithful, destinations="two.png", source_face_id=str(source))).values()
        reported = item["identity_similarity"]
        swapped = identities(models, result)[0]  # destination face 1, re-embedded here at its own landmarks
        others = [float(swapped @ upload[other - 1]) for other in (1, 2, 3) if other != source]
        assert abs(reported - float(swapped @ upload[source - 1])) < 0.05, (source, reported)
        assert reported > max(others) + 0.05, (source, reported, others)


def test_the_score_is_a_header_on_the_picture_apis(faithful: Server) -> None:
    response = httpx.post(faithful.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "two.png"}, timeout=120)
    assert 0 < float(response.headers["x-identity-similarity"]) <= 1
    sheet = httpx.post(faithful.url + "/swap_sheet", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, timeout=120)
    assert 0 < float(sheet.headers["x-identity-similarity"]) <= 1


def face_changed(result: np.ndarray, original: np.ndarray, centre: tuple[int, int]) -> bool:
    half = FACE_SIDE // 2 - 8
    window = (slice(centre[1] - half, centre[1] + half), slice(centre[0] - half, centre[0] + half))
    return float(np.abs(result[window].astype(int) - original[window]).mean()) > 10


def test_destination_face_id_0_swaps_into_every_face(faithful: Server) -> None:
    (result, item), = pictures(swap(faithful, destinations="three.png", destination_face_id="0")).values()
    original = draw_faces((640, 640), THREE)
    assert all(face_changed(result, original, centre) for centre in THREE)
    assert [f["destination_face_id"] for f in item["faces"]] == [1, 2, 3]
    assert {f["source_face_id"] for f in item["faces"]} == {1}
    assert item["identity_similarity"] == min(f["identity_similarity"] for f in item["faces"])


def test_a_face_map_puts_each_identity_where_it_was_mapped(faithful: Server, models: LoadedModels) -> None:
    upload = identities(models, decode(UPLOAD))
    for face_map, expected in (("1:2,2:1", [2, 1]), ("3:1,1:2", [3, 1])):
        (result, item), = pictures(swap(faithful, destinations="two.png", face_map=face_map)).values()
        landed = identities(models, result)
        nearest = [int(np.argmax(upload @ identity)) + 1 for identity in landed]
        assert nearest == expected, (face_map, nearest)
        assert sorted((f["source_face_id"], f["destination_face_id"]) for f in item["faces"]) == sorted(
            (int(a), int(b)) for a, b in (pair.split(":") for pair in face_map.split(",")))


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"face_map": "1:2,4:1"}, 422, "face_map pair 4:1: upload face 4 is out of range"),
    ({"face_map": "1-2"}, 400, "face_map pair '1-2'"),
    ({"face_map": "1:1,2:1"}, 422, "two upload faces into destination face(s) [1]"),
    ({"face_map": "1:3", "destinations": "two.png"}, 422, "face_map pair 1:3: destination_face_id=3 is out of range"),
    ({"pixel_boost": "300"}, 400, "pixel_boost"),
    ({"pixel_boost": "big"}, 400, "pixel_boost"),
    ({"face_map": "1:1," * 150}, 400, "face_map"),  # over its 400 characters
    ({"face_map": ",".join(f"1:{i}" for i in range(1, 34))}, 400, "at most 32"),
    ({"destination_face_id": "-1"}, 400, "destination_face_id"),
])
def test_bad_face_maps_and_boosts_are_refused_with_what_to_do(faithful: Server, fields: dict, status: int, words: str) -> None:
    response = httpx.post(faithful.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")}, data=fields, timeout=60)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_a_face_map_skips_destinations_it_does_not_fit(faithful: Server) -> None:
    body = swap(faithful, face_map="1:3").json()  # only three.png has a third face
    assert [i["destination_name"] for i in body["swapped_images"]] == ["three.png"]
    assert {s["destination_name"] for s in body["skipped"]} == {"pattern.png", "two.png"}


def lab_mean(image: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    half = FACE_SIDE // 2 - 8
    window = image[centre[1] - half : centre[1] + half, centre[0] - half : centre[0] + half]
    return cv2.cvtColor(window, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(float).mean(axis=0)


def test_color_match_keeps_the_destinations_colours(faithful: Server) -> None:
    original = lab_mean(draw_faces((640, 640), TWO), TWO[0])
    plain, matched = (lab_mean(only_picture(swap(faithful, destinations="two.png", color_match=flag)), TWO[0])
                      for flag in ("false", "true"))
    assert np.abs(matched - original).sum() < 0.5 * np.abs(plain - original).sum(), (original, plain, matched)


def test_the_zip_lists_each_pictures_faces(faithful: Server) -> None:
    response = httpx.post(faithful.url + "/swap_zip", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destinations": "three.png", "destination_face_id": "0"}, timeout=120)
    index = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("results.json"))
    (listed,) = index["swapped_images"]
    assert len(listed["faces"]) == 3 and listed["identity_similarity"] is not None


def test_the_bentoml_client_and_curl_take_the_new_options(faithful: Server, tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(UPLOAD)
    with bentoml.SyncHTTPClient(faithful.url) as client:
        body = client.swap(image=photo, destinations=["three.png"], destination_face_id=0, pixel_boost=256,
                           color_match=True)
        picture = client.swap_image(image=photo, destination="two.png", face_map="2:1,1:2")
    (item,) = body["swapped_images"]
    assert [f["destination_face_id"] for f in item["faces"]] == [1, 2, 3]
    assert picture.size == (640, 640)
    if shutil.which("curl"):
        answered = subprocess.run(
            ["curl", "-sS", "-D", "-", "-o", str(tmp_path / "out.jpg"), "-F", f"image=@{photo}", "-F", "destination=two.png",
             "-F", "face_map=1:2,2:1", "-F", "pixel_boost=512", f"{faithful.url}/swap_image"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        assert " 200" in answered.splitlines()[0] and "x-identity-similarity:" in answered.lower()
        assert decode((tmp_path / "out.jpg").read_bytes()).shape == (640, 640, 3)
