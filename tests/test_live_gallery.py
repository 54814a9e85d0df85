"""A booth changes its gallery while the service runs: new, replaced, removed and broken portraits, and a
ConfigMap-style symlink swap, all picked up without a restart."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from conftest import Server, encode, start_server, stop_server, upload_image, wait_for
from generated_models import draw_faces
from swaparoony.engine import SwapEngine, SwapOptions, SwapOutcome
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.settings import Settings

UPLOAD = encode(upload_image())


def listed(server: Server) -> dict[str, dict]:
    return {d["name"]: d for d in httpx.post(server.url + "/destinations", timeout=30).json()}


def swap_into(server: Server, destination: str) -> httpx.Response:
    return httpx.post(server.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                      data={"destination": destination}, timeout=60)


@pytest.fixture()
def live(tmp_path: Path, models_dir: Path, gallery_dir: Path) -> Iterator[tuple[Server, Path]]:
    directory = tmp_path / "destinations"
    shutil.copytree(gallery_dir, directory)
    running = start_server(tmp_path / "server", {"SWAPAROONY_MODELS_DIR": str(models_dir),
                                                 "SWAPAROONY_DESTINATIONS_DIR": str(directory),
                                                 "SWAPAROONY_GALLERY_POLL_S": "0.2"})
    yield running, directory
    stop_server(running.process)


def test_portraits_added_replaced_removed_or_broken_are_picked_up_without_a_restart(live: tuple[Server, Path]) -> None:
    server, directory = live
    pid = server.process.pid
    cv2.imwrite(str(directory / "new_face.jpg"), draw_faces((640, 640), [(320, 320)]))
    wait_for(lambda: listed(server).get("new_face.jpg", {}).get("faces") == 1, "the new portrait to be analysed")
    assert swap_into(server, "new_face.jpg").status_code == 200

    cv2.imwrite(str(directory / "one_face.jpg"), draw_faces((640, 640), [(160, 320), (480, 320)]))  # now two faces
    wait_for(lambda: listed(server)["one_face.jpg"]["faces"] == 2, "the replaced portrait to be analysed again")

    (directory / "two_faces.png").unlink()
    wait_for(lambda: "two_faces.png" not in listed(server), "the removed portrait to be dropped")
    assert swap_into(server, "two_faces.png").status_code == 404

    (directory / "half.jpg").write_bytes(encode(np.full((64, 64, 3), 90, np.uint8))[:200])
    wait_for(lambda: "half.jpg" in listed(server), "the broken file to be reported")
    assert listed(server)["half.jpg"]["reason"] and listed(server)["half.jpg"]["faces"] == 0
    assert swap_into(server, "new_face.jpg").status_code == 200  # the rest keeps working

    log = server.log()
    assert "gallery reloaded: added ['new_face.jpg']" in log and "removed ['two_faces.png']" in log
    assert server.process.pid == pid and server.process.poll() is None  # no restart


def test_a_configmap_symlink_swap_publishes_a_new_set(tmp_path: Path, models_dir: Path) -> None:
    # A ConfigMap volume holds its files in a timestamped folder; each visible name is a link through
    # ..data, and an update points ..data at a new folder in one rename.
    root = tmp_path / "configmap"
    first, second = root / "..2026_11_30_a", root / "..2026_11_30_b"
    first.mkdir(parents=True)
    second.mkdir()
    cv2.imwrite(str(first / "booth.jpg"), draw_faces((640, 640), [(320, 320)]))
    cv2.imwrite(str(second / "booth.jpg"), draw_faces((640, 640), [(160, 320), (480, 320)]))
    os.symlink(first.name, root / "..data")
    os.symlink("..data/booth.jpg", root / "booth.jpg")
    server = start_server(tmp_path / "server", {"SWAPAROONY_MODELS_DIR": str(models_dir),
                                                "SWAPAROONY_DESTINATIONS_DIR": str(root), "SWAPAROONY_GALLERY_POLL_S": "0.2"})
    try:
        assert listed(server)["booth.jpg"]["faces"] == 1
        os.symlink(second.name, root / "..data_tmp")
        os.replace(root / "..data_tmp", root / "..data")
        wait_for(lambda: listed(server)["booth.jpg"]["faces"] == 2, "the swapped-in version to be analysed")
    finally:
        stop_server(server.process)


def test_a_request_in_flight_during_a_reload_finishes_against_the_gallery_it_started_with(
        tmp_path: Path, models_dir: Path, gallery_dir: Path) -> None:
    directory = tmp_path / "destinations"
    shutil.copytree(gallery_dir, directory)
    entered, gate = asyncio.Event(), asyncio.Event()

    class Gated(LocalModelCalls):
        """The real models, with the swap held until the test lets it go."""

        async def swap_faces(self, requests: list) -> list:
            entered.set()
            await gate.wait()
            return await super().swap_faces(requests)

    async def scenario() -> tuple[SwapOutcome, bool]:
        settings = Settings(destinations_dir=directory, state_dir=tmp_path / "state")
        engine = await SwapEngine.start(Gated(LoadedModels.load(models_dir)), settings)
        try:
            in_flight = asyncio.create_task(engine.swap(UPLOAD, SwapOptions(destinations=("one_face.jpg",))))
            await entered.wait()
            (directory / "one_face.jpg").unlink()
            reloaded = await engine.live.reload()
            gone = reloaded and "one_face.jpg" not in engine.gallery.destinations
            gate.set()
            return await in_flight, gone
        finally:
            engine.close()

    outcome, gone = asyncio.run(scenario())
    assert gone  # the new gallery no longer has it...
    assert [image.destination_name for image in outcome.swapped] == ["one_face.jpg"]  # ...the request finished with it
