"""The operator's writes, in process: the first portrait of a gallery whose directory does not exist yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import encode
from generated_models import draw_faces
from swaparoony.engine import SwapEngine
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.settings import Settings


def test_the_first_portrait_creates_the_gallery_directory(tmp_path: Path, models_dir: Path) -> None:
    directory = tmp_path / "not" / "made" / "yet"

    async def scenario() -> tuple[int, bool, list[str]]:
        settings = Settings(destinations_dir=directory, state_dir=tmp_path / "state", content_credentials="xmp")
        engine = await SwapEngine.start(LocalModelCalls(LoadedModels.load(models_dir)), settings)
        try:
            destination, new = await engine.editor.put("first.jpg", encode(draw_faces((640, 640), [(320, 320)])))
            return len(destination.faces), new, list(engine.gallery.destinations)
        finally:
            engine.close()

    faces, new, names = asyncio.run(scenario())
    assert (faces, new, names) == (1, True, ["first.jpg"])
    assert (directory / "first.jpg").is_file() and [p.name for p in directory.iterdir()] == ["first.jpg"]
