"""The gallery is bounded in portraits and decoded pixels: an operator's PUT past a bound is a 409 that says which,
and portraits copied in past it are listed as skipped with the reason, until room frees up."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest

from conftest import Server, encode, start_server, stop_server, wait_for
from generated_models import draw_faces, gif_clip, moving_face_frames

ADMIN_TOKEN = "operator-token-for-bound-tests"
OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SMALL = encode(draw_faces((640, 640), [(320, 320)]))          # 409,600 pixels
LARGE = encode(draw_faces((1280, 1280), [(640, 640)], scale=2.0))  # 1,638,400 pixels


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, gallery_dir: Path) -> Iterator[tuple[Server, Path]]:
    """At most 4 portraits and 3,000,000 pixels; the shared gallery's three readable files hold 2,168,000."""
    directory = tmp_path_factory.mktemp("bounded") / "destinations"
    shutil.copytree(gallery_dir, directory)
    running = start_server(tmp_path_factory.mktemp("bounded_server"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(directory),
        "SWAPAROONY_ADMIN_TOKEN": ADMIN_TOKEN, "SWAPAROONY_GALLERY_POLL_S": "0.2",
        "SWAPAROONY_MAX_DESTINATIONS": "4", "SWAPAROONY_MAX_GALLERY_PIXELS": "3000000",
    })
    yield running, directory
    stop_server(running.process)


def put(server: Server, name: str, data: bytes) -> httpx.Response:
    return httpx.put(f"{server.url}/destinations/{name}", files={"image": (name, data, "image/jpeg")}, headers=OPERATOR,
                     timeout=60)


def listed(server: Server) -> dict[str, dict[str, object]]:
    return {d["name"]: d for d in httpx.post(server.url + "/destinations", timeout=30).json()}


def test_a_put_past_the_pixel_bound_is_409_and_nothing_is_written(bounded: tuple[Server, Path]) -> None:
    server, directory = bounded
    refused = put(server, "large.jpg", LARGE)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "gallery_full" and "3,000,000" in refused.json()["error"]
    assert not (directory / "large.jpg").exists() and "large.jpg" not in listed(server)


def test_a_clip_put_counts_every_frame_against_the_pixel_bound(bounded: tuple[Server, Path]) -> None:
    server, directory = bounded
    clip = gif_clip(moving_face_frames(6), [100] * 6)  # 1,351,680 pixels in all; room for 832,000, one frame 225,280
    refused = put(server, "dance.gif", clip)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "gallery_full" and "3,000,000" in refused.json()["error"]
    assert not (directory / "dance.gif").exists() and "dance.gif" not in listed(server)


def test_a_put_past_the_portrait_bound_is_409_until_one_is_removed(bounded: tuple[Server, Path]) -> None:
    server, directory = bounded
    assert put(server, "fifth.jpg", SMALL).status_code == 201
    refused = put(server, "sixth.jpg", SMALL)
    assert refused.status_code == 409 and "at most 4 portraits" in refused.json()["error"], refused.text
    assert put(server, "fifth.jpg", SMALL).status_code == 200  # replacing one needs no more room
    assert httpx.delete(f"{server.url}/destinations/fifth.jpg", headers=OPERATOR, timeout=30).status_code == 204
    assert put(server, "sixth.jpg", SMALL).status_code == 201
    assert httpx.delete(f"{server.url}/destinations/sixth.jpg", headers=OPERATOR, timeout=30).status_code == 204


def test_portraits_copied_in_past_a_bound_are_skipped_with_the_reason_until_room_frees(bounded: tuple[Server, Path]) -> None:
    server, directory = bounded
    cv2.imwrite(str(directory / "x_large.png"), draw_faces((1280, 1280), [(640, 640)], scale=2.0))  # past the pixels
    wait_for(lambda: "SWAPAROONY_MAX_GALLERY_PIXELS" in str(listed(server).get("x_large.png", {}).get("reason")),
             "the large portrait to be listed as past the pixel bound")
    assert "x_large.png skipped: its 1,638,400 pixels" in server.log()
    cv2.imwrite(str(directory / "y_small.jpg"), draw_faces((640, 640), [(320, 320)]))  # the fifth: fits
    cv2.imwrite(str(directory / "z_small.jpg"), draw_faces((640, 640), [(320, 320)]))  # the sixth: past the count
    wait_for(lambda: "z_small.jpg" in listed(server), "the copied portraits to be listed")
    gallery = listed(server)
    # Past both bounds now; which one it is listed for depends on whether it was read again before the fifth came.
    reason = str(gallery["x_large.png"]["reason"])
    assert "SWAPAROONY_MAX_GALLERY_PIXELS" in reason or "SWAPAROONY_MAX_DESTINATIONS" in reason, reason
    assert gallery["y_small.jpg"]["faces"] == 1
    assert "SWAPAROONY_MAX_DESTINATIONS" in str(gallery["z_small.jpg"]["reason"])
    (directory / "y_small.jpg").unlink()
    (directory / "x_large.png").unlink()
    wait_for(lambda: listed(server).get("z_small.jpg", {}).get("faces") == 1, "the skipped portrait to fit once room frees")
