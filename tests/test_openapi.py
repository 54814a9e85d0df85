"""The OpenAPI document and the page people open first, as a validator and a browser read them."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

import swaparoony
from conftest import Server, wait_for
from http_api.openapi import ERRORS
from swaparoony import errors

OUR_APIS = ("/swap", "/swap_image", "/swap_zip", "/swap_sheet", "/faces", "/faces_image", "/destinations")
BUILT = "OpenAPI document (/docs.json) built"


@pytest.fixture(scope="module")
def document(server: Server) -> dict:
    return httpx.get(server.url + "/docs.json").json()


def test_the_document_is_valid_openapi(document: dict) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Swaparoony" and document["info"]["version"] == swaparoony.__version__
    assert "BentoML" not in document["info"]["description"] and "http" not in document["info"]["description"]


def test_every_parameter_is_explained_with_an_example(document: dict) -> None:
    for path in OUR_APIS:
        form = document["paths"][path]["post"].get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if form is None:  # /destinations takes no parameters
            continue
        assert "encoding" not in form, path  # text fields are sent as text, not as JSON blobs
        for name, prop in form["schema"]["properties"].items():
            assert len(prop.get("description", "")) > 20, (path, name)
            # Swagger UI fills examples in: face_map's, an enhancer's or a mask's would turn it on for every try.
            if name not in ("image", "face_map", "enhancer", "mask", "mask_regions"):
                assert prop.get("examples"), (path, name)


def test_the_destination_names_are_offered(document: dict) -> None:
    swap_image = document["paths"]["/swap_image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert swap_image["properties"]["destination"]["enum"] == ["broken.jpg", "no_face.png", "one_face.jpg", "two_faces.png"]
    swap = document["paths"]["/swap"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "one_face.jpg" in swap["properties"]["destinations"]["items"]["enum"]


def test_every_real_error_status_is_documented_with_its_real_body(document: dict) -> None:
    raised = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.SwaparoonyError)]
    operations = [operation for item in document["paths"].values() for operation in item.values()]
    answered = {status for operation in operations for status in operation["responses"]}
    for cls in raised:  # every domain error is documented under the status it is answered with
        assert str(cls.status) in answered, cls
        assert cls.status in ERRORS or cls.status == 409, cls  # 409: the operator routes' own (gallery_admin.py)
    operator = document["paths"]["/destinations/{name}"]["put"]["responses"]
    assert "409" in operator and "409" not in document["paths"]["/swap"]["post"]["responses"]
    for path in OUR_APIS:
        responses = document["paths"][path]["post"]["responses"]
        expected = {"200", "500", "503", "504"} | ({"400", "413", "415", "422"} if path != "/destinations" else set())
        assert expected <= set(responses), path
        assert responses["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(document["components"]["schemas"]["Error"]["required"]) == {"error", "code"}
    for path in ("/swap_sheet", "/faces_image"):
        assert set(document["paths"][path]["post"]["responses"]["200"]["content"]) == {"image/jpeg", "image/png", "image/webp"}
    clip_or_picture = {"image/jpeg", "image/png", "image/webp", "video/mp4", "image/gif"}
    assert set(document["paths"]["/swap_image"]["post"]["responses"]["200"]["content"]) == clip_or_picture
    assert set(document["paths"]["/swap_image/get"]["get"]["responses"]["200"]["content"]) == clip_or_picture
    assert set(document["paths"]["/swap_zip"]["post"]["responses"]["200"]["content"]) == {"application/zip"}


def test_the_page_is_swaparoonys_and_loads_nothing_from_outside(server: Server) -> None:
    page = httpx.get(server.url + "/").text
    assert "<title>Swaparoony</title>" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "googletagmanager" not in page
    for asset in re.findall(r"(?:src|href)=\"\./([^\"]+)\"", page):
        assert httpx.get(f"{server.url}/{asset}").status_code == 200, asset


def builds(server: Server) -> int:
    return server.log().count(BUILT)


def offered(document: bytes) -> list[str]:
    schema = json.loads(document)["paths"]["/swap_image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    return schema["properties"]["destination"]["enum"]


def test_the_document_is_built_once_per_gallery_change(server: Server, gallery_dir: Path) -> None:
    """Building it cost 26 ms of the event loop a GET: 32 clients reading it held the probes for seconds."""
    first = [httpx.get(server.url + "/docs.json").content for _ in range(10)]  # every API worker has built it
    built = builds(server)
    assert built >= 1 and len(set(first)) == 1
    assert {httpx.get(server.url + "/docs.json").content for _ in range(20)} == {first[0]} and builds(server) == built
    staged = gallery_dir.parent / "added_face.jpg"
    shutil.copyfile(gallery_dir / "one_face.jpg", staged)
    os.replace(staged, gallery_dir / "added_face.jpg")  # appears whole: one gallery change
    try:
        wait_for(lambda: "added_face.jpg" in offered(httpx.get(server.url + "/docs.json").content), "the new portrait")
        changed = {httpx.get(server.url + "/docs.json").content for _ in range(20)}
        assert len(changed) == 1 and changed != {first[0]}
        after_change = builds(server)
        assert built < after_change <= 2 * built  # once more in each worker
        assert {httpx.get(server.url + "/docs.json").content for _ in range(20)} == changed
        assert builds(server) == after_change
    finally:
        (gallery_dir / "added_face.jpg").unlink()
        wait_for(lambda: httpx.get(server.url + "/docs.json").content == first[0], "the gallery as it was")


def test_optional_fields_start_empty_not_null(document: dict) -> None:
    """Swagger UI fills a `null` default in as the text "null" and sends it (face_map=null is a 400)."""
    for path in OUR_APIS:
        form = document["paths"][path]["post"].get("requestBody", {}).get("content", {}).get("multipart/form-data")
        for name, prop in (form or {"schema": {}})["schema"].get("properties", {}).items():
            assert prop.get("default", "unset") is not None, (path, name)
    face_map = document["paths"]["/swap_image"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "default" not in face_map["properties"]["face_map"] and "examples" not in face_map["properties"]["face_map"]


def test_files_are_answered_as_media_types_without_a_made_up_example(document: dict) -> None:
    """A picture or ZIP schema is what Swagger UI turns into random bytes shown as the example."""
    for path in ("/swap_image", "/swap_sheet", "/faces_image", "/swap_zip"):
        ok = document["paths"][path]["post"]["responses"]["200"]
        assert ok["description"] and all(media == {} for media in ok["content"].values()), path


def test_every_operation_has_a_summary_and_no_servers_list_is_forced(document: dict) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert 5 < len(operation.get("summary", "")) <= 110 and "\n" not in operation["summary"], (path, method)
            assert "<code>" not in operation.get("description", ""), (path, method)
    assert document["paths"]["/swap_image"]["post"]["summary"] == "Swap into one destination and get the picture itself, shown in Swagger UI"
    assert "servers" not in document  # BentoML's [{"url": "."}] was a Servers box with one meaningless choice
