"""What a new user notices first: Swagger UI at `/` in a real browser, and the README's examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from browser import chromium, photo_in, swagger_ui
from conftest import REPO, Server
from swaparoony.provenance import credentials_report

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Request

SCREENSHOTS = REPO / "build" / "screenshots"
PICTURE_APIS = ("swaparoony__swap_image", "swaparoony__swap_sheet", "swaparoony__faces_image")
MAIN_APIS = ("swaparoony__swap", "swaparoony__swap_image", "swaparoony__swap_sheet", "swaparoony__swap_zip",
             "swaparoony__faces", "swaparoony__faces_image", "swaparoony__destinations")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def sent() -> list[Request]:
    """The requests the page sent."""
    return []


@pytest.fixture
def page(browser: Browser, server: Server, sent: list[Request]) -> Iterator[Page]:
    yield from swagger_ui(browser, server.url, lambda request: sent.append(request))  # Playwright wants a function


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return photo_in(tmp_path_factory.mktemp("photo"))


def opened(page: Page, operation: str) -> Locator:
    """An operation's block (by operationId), opened as a person clicks it open."""
    block = page.locator(f"[id$='-{operation}']").first
    block.locator(".opblock-summary").click()
    block.locator(".opblock-body").wait_for()
    return block


def shot(element: Page | Locator, name: str) -> None:
    """Keep what a person sees under build/screenshots/, to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def execute_swap_image(page: Page, photo: Path, name: str) -> tuple[Locator, str]:
    """Try /swap_image with a photo and a portrait, nothing else touched; its block and the curl Swagger UI shows."""
    block = opened(page, "swaparoony__swap_image")
    block.locator(".try-out__btn").click()
    face_map = block.locator("tr[data-property-name='face_map'] input").first
    assert face_map.input_value() == ""  # was the text "null", sent as a face map (400)
    block.locator("input[type=file]").set_input_files(str(photo))
    block.locator("tr[data-property-name='destination'] select").select_option("one_face.jpg")
    shot(block, f"{name}-form")
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    shot(block, f"{name}-executed")
    curl = block.locator(".curl-command").first.inner_text()
    assert "destination=one_face.jpg" in curl and "null" not in curl
    return block, curl


def test_face_map_starts_empty(page: Page, photo: Path) -> None:
    execute_swap_image(page, photo, "swap_image-face_map")


def test_an_empty_face_map_is_not_sent(page: Page, sent: list[Request], photo: Path) -> None:
    _, curl = execute_swap_image(page, photo, "swap_image-face_map-unsent")
    (request,) = [seen for seen in sent if seen.url.endswith("/swap_image")]
    body = request.post_data_buffer
    assert body is None or (b'name="destination"' in body and b'name="face_map"' not in body)
    assert "face_map" not in curl


def test_try_it_out_offers_no_servers_box(page: Page) -> None:
    block = opened(page, "swaparoony__swap_image")
    block.locator(".try-out__btn").click()
    block.locator(".execute").wait_for()
    shot(block, "swap_image-try_it_out")
    assert block.locator(".operation-servers, .servers").count() == 0


@pytest.mark.parametrize("operation", [*PICTURE_APIS, "swaparoony__swap_zip"])
def test_a_file_answer_is_described_not_shown_as_bytes(page: Page, operation: str) -> None:
    block = opened(page, operation)
    ok = block.locator(".responses-table tr.response[data-code='200']").first
    text = ok.inner_text()
    assert all(line.replace("\t", " ").isprintable() for line in text.splitlines()), text  # no made-up bytes
    assert ok.locator(".example, .highlight-code, pre").count() == 0
    types = ok.locator("select option").all_inner_texts()
    expected = ["application/zip"] if operation.endswith("zip") else ["image/jpeg", "image/png", "image/webp"]
    expected += ["video/mp4", "image/gif"] if operation.endswith("swap_image") else []  # a clip destination's
    assert types == expected
    assert ("ZIP archive" if operation.endswith("zip") else "The picture itself") in text
    shot(ok, f"{operation.removeprefix('swaparoony__')}-200")


def test_every_api_in_the_list_has_a_summary_and_there_is_no_servers_box(page: Page) -> None:
    for operation in MAIN_APIS:
        summary = page.locator(f"[id$='-{operation}'] .opblock-summary-description").first
        assert len(summary.inner_text().strip()) > 10, operation
    for block in page.locator(".opblock").all():
        assert block.locator(".opblock-summary-description").inner_text().strip(), block.get_attribute("id")
    assert page.locator(".servers, .servers-title").count() == 0
    assert page.locator(".btn.authorize").count() == 1  # the box it shared stays, with Authorize alone
    shot(page, "home")
    page.set_viewport_size({"width": 1280, "height": 2400})
    shot(page, "list")


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (block,) = [found for found in blocks if containing in found]
    return block


def as_run_here(text: str, server: Server, photo: Path) -> str:
    """The README's text aimed at the test server: its URL, the test photo for the shipped one, a test portrait."""
    return (text.replace("http://localhost:3000", server.url).replace("destinations/grace_hopper.jpg", str(photo))
            .replace("astronaut.png", "one_face.jpg").replace("grace_hopper.jpg", "one_face.jpg"))


def test_the_readme_curl_examples_run_as_written(server: Server, photo: Path, tmp_path: Path) -> None:
    script = as_run_here(readme_block("sh", "/swap_sheet"), server, photo)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace("curl ", "curl -sSf ")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert '"swapped_images"' in run.stdout
    for written in re.findall(r"-o (\S+)", script):
        assert (tmp_path / written).stat().st_size > 1000, written


def test_the_readme_python_example_keeps_the_content_credentials(server: Server, photo: Path, tmp_path: Path) -> None:
    script = as_run_here(readme_block("python", "client.request"), server, photo)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr
    for written in re.findall(r'Path\("([^"/]+)"\)\.write_bytes', script):
        report = credentials_report.read(tmp_path / written, None)
        assert report.from_swaparoony and report.xmp_source_type, written
