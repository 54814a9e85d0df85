"""Debian's Chromium driven by Playwright, for the tests that use a page as people do (Playwright cannot download its
own browser here), and the photo they upload through it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


def photo_in(directory: Path) -> Path:
    """A photo with one face, as a person picks it in the page's file chooser."""
    path = directory / "me.jpg"
    path.write_bytes(encode(upload_image()))
    return path
