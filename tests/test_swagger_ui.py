"""Swagger UI at `/` in a real browser (Debian's Chromium driven by Playwright), used as a new user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from browser import chromium, photo_in, swagger_ui
from conftest import ADMIN_TOKEN, Server, encode
from generated_models import draw_faces

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    requested: list[str] = []
    for opened in swagger_ui(browser, server.url, lambda request: requested.append(request.url)):
        opened.requested = requested
        yield opened


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_in(tmp_path_factory.mktemp("photo"))


def try_it_out(page: object, operation: str, photo: Path | None, choices: dict[str, str] | None = None) -> object:
    """Open an operation (by operationId), press Try it out, set the photo and choices, press Execute; its block."""
    block = page.locator(f"[id$='-{operation}']").first  # type: ignore[attr-defined]
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    if photo is not None:
        block.locator("input[type=file]").set_input_files(str(photo))
    for name, value in (choices or {}).items():
        field = block.locator(f"tr[data-property-name='{name}']")
        if field.locator("select").count():
            field.locator("select").select_option(value)
        else:
            field.locator("input").first.fill(value)
    block.locator(".execute").click()
    block.locator(".live-responses-table tbody .response-col_status").first.wait_for()
    return block


def status_of(block: object) -> str:
    return block.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip()  # type: ignore[attr-defined]


def shot(element: object, name: str) -> None:
    """Keep what a person sees (a page, or one operation's request and result) under build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]


def test_the_page_is_swaparoonys_and_loads_nothing_from_outside(page: object, server: Server) -> None:
    assert page.title() == "Swaparoony"  # type: ignore[attr-defined]
    assert "Start here" in page.locator(".info").inner_text()  # type: ignore[attr-defined]
    shot(page, "home")
    outside = [url for url in page.requested if not url.startswith((server.url, "blob:", "data:"))]  # type: ignore[attr-defined]
    assert outside == []


@pytest.mark.parametrize(("operation", "choices"), [
    ("swaparoony__faces_image", {}),
    ("swaparoony__swap_image", {"destination": "one_face.jpg"}),
    ("swaparoony__swap_sheet", {}),
    ("swaparoony__swap_image", {"destination": "two_faces.png", "output_format": "png"}),
    ("swaparoony__swap_sheet", {"output_format": "webp"}),
])
def test_picture_apis_show_the_picture_with_the_defaults(page: object, photo: Path, operation: str, choices: dict) -> None:
    block = try_it_out(page, operation, photo, choices)
    assert status_of(block) == "200"
    picture = block.locator(".live-responses-table img").first
    picture.wait_for()
    assert picture.evaluate("img => img.complete && img.naturalWidth > 100")
    shot(block.locator(".live-responses-table"), f"{operation.removeprefix('swaparoony__')}-{choices.get('output_format', 'jpeg')}")


@pytest.mark.parametrize(("operation", "words"), [
    ("swaparoony__swap", "swapped_images"), ("swaparoony__faces", "face_id"), ("swaparoony__destinations", "one_face.jpg"),
    ("api_v1_swap_api_v1_swap_post", "swapped_images"),
])
def test_json_apis_answer_200_with_the_defaults(page: object, photo: Path, operation: str, words: str) -> None:
    block = try_it_out(page, operation, None if operation.endswith("destinations") else photo)
    assert status_of(block) == "200"
    assert words in block.locator(".live-responses-table tbody .response-col_description").first.inner_text()


def test_an_error_reads_as_a_sentence(page: object, photo: Path) -> None:
    block = try_it_out(page, "swaparoony__swap_image", photo, {"destination": "one_face.jpg", "destination_face_id": "5"})
    assert status_of(block) == "422"
    body = block.locator(".live-responses-table tbody .response-col_description").first.inner_text()
    assert "destination_face_id=5 is out of range" in body and "face_id_out_of_range" in body
    shot(block.locator(".live-responses-table"), "error")


def test_swap_zip_offers_the_archive_as_a_download(page: object, photo: Path) -> None:
    block = try_it_out(page, "swaparoony__swap_zip", photo)
    assert status_of(block) == "200"
    link = block.locator(".live-responses-table a[download]").first
    link.wait_for()
    assert link.get_attribute("download") == "swaparoony.zip" and link.get_attribute("href").startswith("blob:")
    shot(block.locator(".live-responses-table"), "swap_zip")


def test_an_operator_authorizes_and_adds_a_portrait(browser: object, tmp_path: Path, operator_server: Server) -> None:
    operator = operator_server
    directory = Path(operator.env["SWAPAROONY_DESTINATIONS_DIR"])
    portrait = tmp_path / "sponsor.jpg"
    portrait.write_bytes(encode(draw_faces((640, 640), [(320, 320)])))
    assert not (directory / "sponsor.jpg").exists()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(operator.url + "/")
        page.locator(".btn.authorize").first.click()
        modal = page.locator(".modal-ux")
        modal.locator("input").first.fill(ADMIN_TOKEN)
        modal.locator("button.authorize").first.click()
        modal.locator("button.btn-done").first.click()
        block = page.locator("[id$='-put_destination_destinations__name__put']").first
        block.locator(".opblock-summary").click()
        block.locator(".try-out__btn").click()
        block.locator("tr[data-param-name='name'] input").fill("sponsor.jpg")
        block.locator("input[type=file]").set_input_files(str(portrait))
        block.locator(".execute").click()
        block.locator(".live-responses-table tbody .response-col_status").first.wait_for()
        assert status_of(block) == "201"
        assert '"swappable_faces"' in block.locator(".live-responses-table tbody .response-col_description").first.inner_text()
        shot(block, "operator_put_destination")
        assert (directory / "sponsor.jpg").read_bytes() == portrait.read_bytes()
    finally:
        context.close()
        # The server is shared: leave its gallery as it was.
        if (directory / "sponsor.jpg").exists():
            removed = httpx.delete(operator.url + "/destinations/sponsor.jpg",
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
            assert removed.status_code == 204, removed.text


def test_a_boosted_face_map_swap_from_swagger_shows_the_picture_and_its_score(page: object, photo: Path) -> None:
    block = try_it_out(page, "swaparoony__swap_image", photo,
                       {"destination": "two_faces.png", "pixel_boost": "512", "face_map": "2:1,1:2", "color_match": "true"})
    assert status_of(block) == "200"
    picture = block.locator(".live-responses-table img").first
    picture.wait_for()
    assert picture.evaluate("img => img.complete && img.naturalWidth > 100")
    assert "x-identity-similarity" in block.locator(".live-responses-table tbody .response-col_description").first.inner_text().lower()
    shot(block.locator(".live-responses-table"), "swap_image-boost512-face_map")
