"""Operators manage the gallery over the API (portraits and clips), and two replicas sharing the directory converge;
the gallery index orders, titles and restricts portraits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, ADMIN_TOKEN, API_TOKEN, Server, encode, pil_bytes, start_server, stop_server, upload_image, wait_for
from generated_models import draw_faces, gif_clip, moving_face_frames, mp4_clip
from test_front_door import readme_block

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KIOSK = {"Authorization": f"Bearer {API_TOKEN}"}
PORTRAIT = encode(draw_faces((640, 640), [(320, 320)]))
CLIP = gif_clip(moving_face_frames(6), [100] * 6)
"""Six frames of a drawn face moving right."""
NOISE = np.random.default_rng(3)
UPLOAD = encode(upload_image())


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory,
             operator_server: Server) -> Iterator[tuple[Server, Server, Path]]:
    """Two servers on one shared destinations directory: `a` (the suite's operator server) takes the operator's calls
    (and needs the API token for swaps), `b` has neither token."""
    a = operator_server
    directory = Path(a.env["SWAPAROONY_DESTINATIONS_DIR"])
    tokens = ("SWAPAROONY_ADMIN_TOKEN", "SWAPAROONY_API_TOKEN")
    common = {name: value for name, value in a.env.items() if name not in tokens}
    b = start_server(tmp_path_factory.mktemp("b"), common)
    yield a, b, directory
    stop_server(b.process)


def listed(server: Server) -> dict[str, dict]:
    return {d["name"]: d for d in httpx.post(server.url + "/destinations", headers=KIOSK, timeout=30).json()}


def put(server: Server, name: str, data: bytes = PORTRAIT, headers: dict | None = None) -> httpx.Response:
    return httpx.put(f"{server.url}/destinations/{name}", files={"image": ("portrait.jpg", data, "image/jpeg")},
                     headers=OPERATOR if headers is None else headers, timeout=60)


def test_an_operator_adds_and_removes_a_portrait_and_both_replicas_converge(replicas: tuple[Server, Server, Path]) -> None:
    a, b, directory = replicas
    created = put(a, "sponsor.jpg")
    assert created.status_code == 201, created.text
    assert created.json()["faces"] == 1 and created.json()["swappable_faces"] == [1]
    assert "sponsor.jpg" in listed(a)  # this replica reloaded before it answered
    wait_for(lambda: listed(b).get("sponsor.jpg", {}).get("faces") == 1, "the other replica to pick the portrait up")
    swapped = httpx.post(b.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                         data={"destination": "sponsor.jpg"}, timeout=60)
    assert swapped.status_code == 200

    replaced = put(a, "sponsor.jpg", encode(draw_faces((640, 640), [(160, 320), (480, 320)])))
    assert replaced.status_code == 200 and replaced.json()["faces"] == 2
    wait_for(lambda: listed(b)["sponsor.jpg"]["faces"] == 2, "the other replica to analyse the replacement")

    assert httpx.delete(f"{a.url}/destinations/sponsor.jpg", headers=OPERATOR, timeout=30).status_code == 204
    assert "sponsor.jpg" not in listed(a)
    wait_for(lambda: "sponsor.jpg" not in listed(b), "the other replica to drop the portrait")
    assert not (directory / "sponsor.jpg").exists()
    assert not [p for p in directory.iterdir() if p.name.endswith(".partial")]  # nothing half-written left behind


def test_an_operator_adds_a_clip_and_both_replicas_list_it_as_moving(replicas: tuple[Server, Server, Path]) -> None:
    a, b, directory = replicas
    added = put(a, "dance.gif", CLIP)
    assert added.status_code == 201, added.text
    assert added.json()["moving"] is True and added.json()["frames"] == 6 and added.json()["faces"] == 1
    wait_for(lambda: listed(b).get("dance.gif", {}).get("faces") == 1, "the other replica to analyse the clip")
    swapped = httpx.post(a.url + "/swap_image", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                         data={"destination": "dance.gif"}, headers=KIOSK, timeout=60)
    assert swapped.status_code == 200 and swapped.headers["content-type"] == "video/mp4", swapped.text
    assert httpx.delete(f"{a.url}/destinations/dance.gif", headers=OPERATOR, timeout=30).status_code == 204
    wait_for(lambda: "dance.gif" not in listed(b), "the other replica to drop the clip")


def test_the_readmes_operator_examples_add_and_remove_a_portrait_and_a_clip(replicas: tuple[Server, Server, Path]) -> None:
    a, _, directory = replicas
    script = readme_block("sh", "Bearer $ADMIN_TOKEN").replace("http://localhost:3000", a.url)
    script = script.replace("curl ", "curl -sS -o /dev/null -w '%{http_code}\\n' ")
    done = subprocess.run(["sh", "-euc", script], cwd=REPO, env={**os.environ, "ADMIN_TOKEN": ADMIN_TOKEN},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["201", "201", "204", "204"], done.stdout
    assert not {"sponsor.png", "sponsor_zoom.mp4"} & {p.name for p in directory.iterdir()}


def test_the_operator_routes_refuse_without_the_operator_token(replicas: tuple[Server, Server, Path]) -> None:
    a, b, directory = replicas
    closed = put(b, "x.jpg", headers={})
    assert closed.status_code == 403 and "SWAPAROONY_ADMIN_TOKEN" in closed.json()["error"]
    assert closed.json()["code"] == "admin_disabled"
    for headers in ({}, KIOSK, {"Authorization": "Bearer nope"}):  # the kiosk's API token is not the operator's
        refused = put(a, "x.jpg", headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", headers
        assert httpx.delete(f"{a.url}/destinations/one_face.jpg", headers=headers, timeout=30).status_code == 403
    assert not (directory / "x.jpg").exists() and (directory / "one_face.jpg").exists()


@pytest.mark.parametrize(("name", "data", "status"), [
    ("..%2Fescape.jpg", PORTRAIT, 404),             # a slash never reaches the route
    ("..escape.jpg", PORTRAIT, 400),
    (".hidden.jpg", PORTRAIT, 400),
    ("gallery.json", b"{}", 415),                   # the index is not a portrait
    ("logo.gif", b"GIF89a" + bytes(100), 400),      # a GIF's signature, then nothing a decoder reads
    ("dance.webp", pil_bytes(Image.new("RGB", (64, 64), (30, 30, 30)), "WEBP", save_all=True,  # a clip, no face
                             append_images=[Image.new("RGB", (64, 64), (40, 40, 40))]), 422),
    ("named_gif.mp4", CLIP, 415),                   # a GIF under an MP4 name
    ("long.gif", gif_clip([NOISE.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(121)], [40] * 121), 413),
    ("slow.gif", gif_clip([NOISE.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)], [6000] * 2), 413),
    ("cut.mp4", mp4_clip(moving_face_frames(3), sound=False)[:2000], 400),
    ("named_png.png", PORTRAIT, 415),               # a JPEG under a PNG name
    ("blank.jpg", encode(np.full((400, 400, 3), 30, np.uint8)), 422),  # no face
    ("truncated.jpg", PORTRAIT[:300], 400),
    ("huge.jpg", PORTRAIT + bytes(6 * 1024 * 1024), 413),                          # bytes
    ("wide.png", encode(np.zeros((1100, 2000, 3), np.uint8), ".png"), 413),       # pixels
])
def test_a_portrait_that_cannot_be_used_is_refused_and_not_written(
        replicas: tuple[Server, Server, Path], name: str, data: bytes, status: int) -> None:
    a, _, directory = replicas
    before = sorted(p.name for p in directory.iterdir())
    refused = put(a, name, data)
    assert refused.status_code == status, refused.text
    if status != 404:
        assert refused.json()["error"] and refused.json()["code"]
    assert sorted(p.name for p in directory.iterdir()) == before


def test_removing_an_unknown_portrait_is_a_404_and_an_unwritable_one_a_409(replicas: tuple[Server, Server, Path]) -> None:
    a, _, directory = replicas
    missing = httpx.delete(f"{a.url}/destinations/never_there.jpg", headers=OPERATOR, timeout=30)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_destination"
    (directory / "occupied.jpg").mkdir()  # the name is taken by something a file cannot replace
    (directory / "occupied.jpg" / "keep").write_text("x")
    try:
        blocked = put(a, "occupied.jpg")
        assert blocked.status_code == 409 and "writable volume" in blocked.json()["error"]
    finally:
        shutil.rmtree(directory / "occupied.jpg")


def test_the_gallery_index_orders_titles_and_restricts_faces(replicas: tuple[Server, Server, Path]) -> None:
    a, b, directory = replicas
    index = {"two_faces.png": {"title": "Two friends", "order": 1, "faces": [2]}, "one_face.jpg": {"order": 2}}
    (directory / "gallery.json").write_text(json.dumps(index))
    try:
        wait_for(lambda: list(listed(b))[:2] == ["two_faces.png", "one_face.jpg"], "the index's order")
        two = listed(b)["two_faces.png"]
        assert two["title"] == "Two friends" and two["faces"] == 2 and two["swappable_faces"] == [2]
        swap = httpx.post(b.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                          data={"destinations": "two_faces.png,one_face.jpg", "destination_face_id": "1"}, timeout=60)
        assert swap.status_code == 200
        (skipped,) = swap.json()["skipped"]
        assert skipped["destination_name"] == "two_faces.png" and "allows face(s) [2]" in skipped["reason"]

        (directory / "gallery.json").write_text('{"one_face.jpg": {"order": "first"}}')
        wait_for(lambda: "gallery.json ignored" in b.log(), "the broken index to be reported")
        assert listed(b)["two_faces.png"]["title"] is None  # name order, every face, as without an index
        assert "order must be a whole number" in b.log()

        (directory / "gallery.json").write_text(json.dumps({"one_face.jpg": {"title": "x" * 100}}) + " " * (1 << 20))
        wait_for(lambda: "gallery.json ignored" in b.log().split("order must be a whole number")[-1], "the oversized index")
        assert "over the 1,048,576-byte limit" in b.log()
    finally:
        (directory / "gallery.json").unlink()
