"""The face enhancer and the occlusion and region masks, through a real server on generated models with the real
files' contracts (generated_models: a parser that labels the GLASSES colour class 6, an occluder that marks the HAND
colour, enhancers whose effect is the negative, CodeFormer's scaled by its weight).

The gallery's one portrait wears both: drawn glasses across the eyes and a hand over the mouth, and gallery.json gives
it the occlusion mask by default, as an operator would for a portrait with a hand near the face.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import bentoml
import cv2
import httpx
import numpy as np
import pytest

from browser import chromium, photo_in, swagger_ui
from conftest import Server, decode, encode, metric, start_server, stop_server, upload_image
from generated_models import GLASSES, HAND, draw_faces, write_models, write_optional_models
from test_front_door import readme_block

UPLOAD = encode(upload_image())
CX = CY = 640
"""The portrait's face centre: 1280x1280, letterboxed by 2, one face."""
GLASSES_ROWS = slice(CY - 36, CY - 28)
HAND_ROWS = slice(CY + 30, CY + 42)
"""Rows well inside the drawn glasses and hand, away from the masks' feathered edges."""
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


def portrait() -> np.ndarray:
    image = draw_faces((1280, 1280), [(CX, CY)], scale=2.0)
    image[CY - 48 : CY - 16, CX - 56 : CX + 56] = GLASSES
    image[CY + 16 : CY + 56, CX - 40 : CX + 24] = HAND
    return image


PORTRAIT = portrait()


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service with two enhancers (GFPGAN's contract and CodeFormer's), a face parser and an occluder installed
    (GPEN and RestoreFormer++ are not), re-batched as on a GPU so the batch-1 files run their free-batch copies."""
    models = write_optional_models(write_models(tmp_path_factory.mktemp("masked_models")))
    gallery = tmp_path_factory.mktemp("masked_gallery")
    cv2.imwrite(str(gallery / "posed.png"), PORTRAIT)
    (gallery / "gallery.json").write_text(json.dumps({"posed.png": {"mask": ["occlusion"]}}))
    running = start_server(tmp_path_factory.mktemp("masked"), {
        "SWAPAROONY_MODELS_DIR": str(models), "SWAPAROONY_DESTINATIONS_DIR": str(gallery), "SWAPAROONY_REBATCH": "on"})
    yield running
    stop_server(running.process)


def swapped(server: Server, **fields: str) -> np.ndarray:
    """The portrait swapped with face 1 of the upload, as a lossless PNG."""
    response = httpx.post(server.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "posed.png", "output_format": "png", **fields}, timeout=120)
    assert response.status_code == 200, response.text
    return decode(response.content)


def changed(picture: np.ndarray, rows: slice) -> int:
    """How many pixels of those rows (across the face) differ from the portrait's."""
    columns = slice(CX - 30, CX + 14)
    return int((picture[rows, columns] != PORTRAIT[rows, columns]).any(axis=-1).sum())


def items(server: Server, model: str) -> float:
    return metric(server, f'swaparoony_model_items_total{{model="{model}"}}')


def test_the_parser_and_occluder_run_once_at_gallery_load_not_per_request(masked: Server) -> None:
    assert items(masked, "face_parser") == 1 and items(masked, "face_occluder") == 1
    swaps = items(masked, "swapper")
    for fields in ({"mask": "region"}, {"mask": "occlusion,region"}, {"mask": "occlusion", "pixel_boost": "256"}):
        swapped(masked, **fields)
    assert items(masked, "swapper") > swaps
    assert items(masked, "face_parser") == 1 and items(masked, "face_occluder") == 1


def test_the_gallerys_occlusion_default_keeps_the_hand_and_a_box_request_overrides_it(masked: Server) -> None:
    default = swapped(masked)
    assert changed(default, HAND_ROWS) == 0  # the hand in front of the face, byte for byte
    assert changed(default, GLASSES_ROWS) > 0  # the occluder does not mark glasses: they are swapped over
    boxed = swapped(masked, mask="box")
    assert changed(boxed, HAND_ROWS) > 0


def test_a_region_mask_without_glasses_keeps_them_and_with_them_swaps_them(masked: Server) -> None:
    without = swapped(masked, mask="region", mask_regions="skin,nose,mouth,upper-lip,lower-lip")
    assert changed(without, GLASSES_ROWS) == 0
    assert changed(without, HAND_ROWS) > 0  # the fake parser calls the hand skin
    every = swapped(masked, mask="region")  # every region, glasses among them
    assert changed(every, GLASSES_ROWS) > 0
    both = swapped(masked, mask="region,occlusion", mask_regions="skin")  # the masks multiply
    assert changed(both, GLASSES_ROWS) == 0 and changed(both, HAND_ROWS) == 0


def test_the_enhancer_shows_inside_the_mask_only_scaled_by_its_blend(masked: Server) -> None:
    plain = swapped(masked, mask="box").astype(int)
    enhanced = {blend: swapped(masked, mask="box", enhancer="gfpgan_1.4", enhancer_blend=str(blend)).astype(int)
                for blend in (0, 50, 100)}
    assert np.array_equal(enhanced[0], plain)
    full, half = np.abs(enhanced[100] - plain).sum(), np.abs(enhanced[50] - plain).sum()
    assert full > 0 and 1.8 < full / half < 2.2, (full, half)
    rows, columns = np.nonzero((plain != PORTRAIT).any(axis=-1))  # where the swap reached, the enhancer may too
    reached = np.zeros(PORTRAIT.shape[:2], bool)
    reached[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
    assert not (enhanced[100] != plain).any(axis=-1)[~reached].any()
    occluded = swapped(masked, mask="occlusion", enhancer="gfpgan_1.4", enhancer_blend="100")
    assert changed(occluded, HAND_ROWS) == 0  # pasted back with the swap's mask


def test_codeformers_weight_reaches_the_model(masked: Server) -> None:
    negative = swapped(masked, mask="box", enhancer="gfpgan_1.4", enhancer_blend="100").astype(int)
    plain = swapped(masked, mask="box").astype(int)
    # The generated CodeFormer is x * (1 - 2 * weight): the negative at 1, itself at 0, nothing at the default 0.5.
    assert np.array_equal(swapped(masked, mask="box", enhancer="codeformer", enhancer_blend="100", enhancer_weight="1"), negative)
    # Weight 0 gives the face back (but for resampling into the enhancer's view and back); the default, a grey face.
    itself = np.abs(swapped(masked, mask="box", enhancer="codeformer", enhancer_blend="100", enhancer_weight="0") - plain)
    grey = np.abs(swapped(masked, mask="box", enhancer="codeformer", enhancer_blend="100") - plain)
    assert itself.sum() < 0.1 * grey.sum()


@pytest.mark.parametrize(("route", "check"), [
    ("/swap", lambda r: r.json()["swapped_images"][0]["destination_name"] == "posed.png"),
    ("/swap_sheet", lambda r: r.headers["content-type"] == "image/jpeg"),
    ("/swap_zip", lambda r: "results.json" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()),
])
def test_every_route_takes_the_enhancer_and_masks(masked: Server, route: str, check: object) -> None:
    response = httpx.post(masked.url + route, files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"enhancer": "codeformer", "enhancer_blend": "60", "mask": "occlusion,region",
                                "mask_regions": "skin,glasses"}, timeout=120)
    assert response.status_code == 200, response.text
    assert check(response)  # type: ignore[operator]


def test_the_bentoml_client_and_curl_take_the_enhancer_and_masks(masked: Server, tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(UPLOAD)
    with bentoml.SyncHTTPClient(masked.url) as client:
        picture = client.swap_image(image=photo, destination="posed.png", output_format="png", enhancer="gfpgan_1.4",
                                    enhancer_blend=100, mask=["region"], mask_regions=["skin", "nose"])
    image = cv2.cvtColor(np.asarray(picture.convert("RGB")), cv2.COLOR_RGB2BGR)
    assert changed(image, GLASSES_ROWS) == 0 and changed(image, HAND_ROWS) > 0
    if shutil.which("curl"):
        subprocess.run(["curl", "-sSf", "-o", str(tmp_path / "out.png"), "-F", f"image=@{photo}", "-F", "destination=posed.png",
                        "-F", "output_format=png", "-F", "enhancer=codeformer", "-F", "mask=box",
                        f"{masked.url}/swap_image"], timeout=120, check=True)
        assert changed(decode((tmp_path / "out.png").read_bytes()), HAND_ROWS) > 0


def test_the_readmes_enhancer_and_mask_examples_run_as_written(masked: Server, tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(UPLOAD)

    def here(text: str) -> str:
        return (text.replace("http://localhost:3000", masked.url).replace("destinations/grace_hopper.jpg", str(photo))
                .replace("astronaut.png", "posed.png"))

    shell = here(readme_block("sh", "enhancer=gfpgan_1.4"))
    subprocess.run(["bash", "-euo", "pipefail", "-c", shell.replace("curl ", "curl -sSf ")], cwd=tmp_path, timeout=120,
                   check=True)
    assert decode((tmp_path / "restored.jpg").read_bytes()).shape == (1280, 1280, 3)
    python = subprocess.run([sys.executable, "-c", here(readme_block("python", "enhancer="))], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert python.returncode == 0 and python.stdout.strip() == "posed.png", python.stderr


def test_the_compatibility_routes_keep_their_answers_with_the_portraits_default_mask(masked: Server) -> None:
    response = httpx.post(masked.url + "/api/v1/swap", files={"image": ("selfie.jpg", UPLOAD, "image/jpeg")},
                          data={"source_face_id": "1", "destination_face_id": "1"}, timeout=120)
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, body
    (item,) = body["swapped_images"]
    data = base64.b64decode(item["image_data"])
    assert data.startswith(b"\xff\xd8\xff") and item["destination_name"] == "posed.png"


@pytest.mark.parametrize(("fields", "words"), [
    ({"enhancer": "gpen_bfr_512"}, ["gpen_bfr_512.onnx", "swaparoony models pull --with gpen_bfr_512", "non-commercial"]),
    ({"enhancer": "restoreformer_plus_plus"}, ["restoreformer_plus_plus.onnx", "--with restoreformer_plus_plus"]),
])
def test_an_enhancer_not_installed_is_refused_naming_its_file_and_how_to_get_it(masked: Server, fields: dict,
                                                                               words: list[str]) -> None:
    response = httpx.post(masked.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "posed.png", **fields}, timeout=60)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.text, response.text


@pytest.mark.parametrize(("fields", "words"), [
    ({"mask": "occlusion"}, ["xseg_1.onnx", "swaparoony models pull --with xseg_1"]),
    ({"mask": "region"}, ["bisenet_resnet_34.onnx", "swaparoony models pull --with bisenet_resnet_34"]),
    ({"enhancer": "gfpgan_1.4"}, ["gfpgan_1.4.onnx", "swaparoony models pull --with gfpgan_1.4"]),
])
def test_options_whose_models_are_missing_are_refused_never_swapped_without(server: Server, fields: dict,
                                                                           words: list[str]) -> None:
    swaps = metric(server, 'swaparoony_model_items_total{model="swapper"}')
    for route in ("/swap_image", "/swap"):
        response = httpx.post(server.url + route, files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                              data={"destination": "one_face.jpg", **fields} if route == "/swap_image" else fields,
                              timeout=60)
        assert response.status_code == 422, response.text
        assert all(word in response.text for word in words), response.text
    assert metric(server, 'swaparoony_model_items_total{model="swapper"}') == swaps


@pytest.mark.parametrize(("fields", "field"), [
    ({"enhancer": "gfpgan_9"}, "enhancer"),
    ({"enhancer": "gfpgan_1.4", "enhancer_blend": "101"}, "enhancer_blend"),
    ({"enhancer": "codeformer", "enhancer_weight": "1.5"}, "enhancer_weight"),
    ({"mask": "box,hands"}, "mask"),
    ({"mask": "region", "mask_regions": "skin,ears"}, "mask_regions"),
])
def test_unknown_or_out_of_range_choices_are_400_naming_the_field(masked: Server, fields: dict, field: str) -> None:
    response = httpx.post(masked.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "posed.png", **fields}, timeout=60)
    assert response.status_code == 400, response.text
    assert field in response.text


def test_swagger_ui_offers_the_installed_enhancers_and_the_masks(masked: Server, tmp_path: Path) -> None:
    for browser in chromium():
        for page in swagger_ui(browser, masked.url, lambda request: None):
            block = page.locator("[id$='-swaparoony__swap_image']").first
            block.locator(".opblock-summary").click()
            block.locator(".try-out__btn").click()
            block.locator("input[type=file]").set_input_files(str(photo_in(tmp_path)))
            enhancer = block.locator("tr[data-property-name='enhancer'] select")
            assert enhancer.locator("option").all_inner_texts()[1:] == ["gfpgan_1.4", "codeformer"]
            enhancer.select_option("gfpgan_1.4")
            block.locator("tr[data-property-name='mask'] select").select_option(["occlusion", "region"])
            block.locator("tr[data-property-name='mask_regions'] select").select_option(["skin", "nose"])
            block.locator("tr[data-property-name='output_format'] select").select_option("png")
            block.locator(".execute").click()
            block.locator(".live-responses-table tbody .response-col_status").first.wait_for()
            assert block.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip() == "200"
            picture = block.locator(".live-responses-table img").first
            picture.wait_for()
            assert picture.evaluate("img => img.complete && img.naturalWidth == 1280")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            block.screenshot(path=str(SCREENSHOTS / "swap_image-enhancer-masks.png"))
