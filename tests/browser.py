"""Debian's Chromium driven by Playwright, for the tests that use a page as people do (Playwright cannot download its
own browser here), and the photo they upload through it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import encode, upload_image

CHROMIUM = "/usr/bin/chromium"


def chromium() -> Iterator[Any]:
    """A launched Chromium for a module's tests (a generator for a module-scoped fixture); skips where there is none."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (.ci/run installs it)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield launched
        launched.close()


def swagger_ui(browser: Any, url: str, on_request: Callable[[Any], object]) -> Iterator[Any]:
    """A fresh page on the service's Swagger UI, its operations listed, telling `on_request` each request it sends
    (a generator for a fixture)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("request", on_request)
    page.goto(url + "/")
    page.wait_for_selector(".opblock")
    yield page
    context.close()


def photo_in(directory: Path) -> Path:
    """A photo with one face, as a person picks it in the page's file chooser."""
    path = directory / "me.jpg"
    path.write_bytes(encode(upload_image()))
    return path
