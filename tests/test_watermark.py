"""Every swapped picture carries Swaparoony's watermark in its pixels, read back by `swaparoony inspect` after the
metadata is gone: a re-save by the README's own BentoML client snippet, a JPEG at quality 75. Real RivaGAN files
(taken from invisible-watermark's wheel), a real server, portraits made from real photos."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import c2pa
import httpx
import insightface
import pytest
from PIL import Image
from skimage import data as photos

from conftest import REPO, Server, encode, start_server, stop_server, upload_image
from generated_models import mp4_clip, photo_gallery, photo_portrait, real_watermark_files, write_models
from swaparoony.imaging.clip_codec import ClipBounds, decode_clip, encode_clip
from test_front_door import readme_block
from swaparoony.models import rivagan
from swaparoony.provenance.watermark import SERVICE_MARK

PREDICT = "/v1/models/swaparoony-face-swap:predict"
PHOTO_CLIP = [photo_portrait(photos.astronaut(), (640, 352), ((320 + 32 * (i // 3), 160),), 1.0) for i in range(6)]
"""A clip made from a real photo (a watermark needs texture to hide in), its face stepping right once."""
UPLOAD = encode(upload_image())
ROUTES = [("/swap", fmt) for fmt in ("jpeg", "png", "webp")] + [("/swap_image", fmt) for fmt in ("jpeg", "png", "webp")]
ROUTES += [("/swap_zip", "jpeg"), ("/swap_sheet", "jpeg"), ("/swap_sheet", "png"), ("/api/v1/swap", "jpeg"),
           (PREDICT, "jpeg")]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated models with the real RivaGAN encoder and its reader."""
    return real_watermark_files(write_models(tmp_path_factory.mktemp("watermark_models")))


@pytest.fixture(scope="module")
def marking(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    """The service with its default watermark on, the real RivaGAN files and a gallery of photos."""
    workdir = tmp_path_factory.mktemp("watermarked")
    destinations = photo_gallery(workdir / "destinations")
    (destinations / "clip.mp4").write_bytes(mp4_clip(PHOTO_CLIP))
    running = start_server(workdir, {"SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_WATERMARK_OPERATOR": "7",
                                     "SWAPAROONY_DESTINATIONS_DIR": str(destinations)})
    yield running
    stop_server(running.process)


def pictures(server: Server, route: str, output_format: str) -> list[bytes]:
    """Every picture one route answers the upload with."""
    files, fields = {"image": ("selfie.jpg", UPLOAD, "image/jpeg")}, {"output_format": output_format}
    if route == PREDICT:
        response = httpx.post(server.url + route, json={"image": base64.b64encode(UPLOAD).decode()}, timeout=120)
    elif route == "/swap_image":
        response = httpx.post(server.url + route, files=files, data={**fields, "destination": "astronaut.png"}, timeout=120)
    else:
        response = httpx.post(server.url + route, files=files, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    if route == "/swap_zip":
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            return [archive.read(name) for name in archive.namelist() if name != "results.json"]
    if route in ("/swap_image", "/swap_sheet"):
        return [response.content]
    return [base64.b64decode(item["image_data"]) for item in response.json()["swapped_images"]]


def inspect(path: Path, models_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swaparoony", "inspect", str(path), "--models-dir", str(models_dir)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


@pytest.mark.parametrize(("route", "output_format"), ROUTES)
def test_every_route_and_format_carries_the_watermark(marking: Server, models_dir: Path, tmp_path: Path, route: str,
                                                      output_format: str) -> None:
    answered = pictures(marking, route, output_format)
    assert len(answered) == (1 if route in ("/swap_image", "/swap_sheet") else 3)  # two photos and the clip
    for number, data in enumerate(answered):
        path = tmp_path / f"{number}.{output_format}"
        path.write_bytes(data)
        found = rivagan.read(path, models_dir)
        assert found.found and found.service_bits >= len(SERVICE_MARK) - 1, (route, number, found)
        assert found.operator == 7  # SWAPAROONY_WATERMARK_OPERATOR


def test_the_manifest_records_the_watermark(marking: Server) -> None:
    (data,) = pictures(marking, "/swap_image", "png")
    with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
        assert reader.get_validation_state() == "Valid"
    actions = [action["action"] for assertion in store["manifests"][store["active_manifest"]]["assertions"]
               if assertion["label"].startswith("c2pa.actions") for action in assertion["data"]["actions"]]
    assert "c2pa.watermarked.unbound" in actions
    assert [s["code"] for s in store.get("validation_status", [])] == ["signingCredential.untrusted"]


def test_a_picture_the_readme_client_saves_again_is_still_found(marking: Server, models_dir: Path, tmp_path: Path) -> None:
    upload = tmp_path / "selfie.jpg"
    upload.write_bytes(UPLOAD)
    script = readme_block("python", "picture.save(").replace("http://localhost:3000", marking.url).replace(
        "destinations/grace_hopper.jpg", str(upload))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr
    (saved,) = [name for name in os.listdir(tmp_path) if name != "selfie.jpg"]
    result = inspect(tmp_path / saved, models_dir)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Swaparoony watermark found; no Content Credentials (stripped or re-saved)" in result.stdout
    assert "content credentials: none from Swaparoony" in result.stdout


def test_a_quality_75_copy_without_metadata_is_still_found(marking: Server, models_dir: Path, tmp_path: Path) -> None:
    (data,) = pictures(marking, "/swap_image", "jpeg")
    served, copy = tmp_path / "served.jpg", tmp_path / "shared.jpg"
    served.write_bytes(data)
    with Image.open(io.BytesIO(data)) as image:
        image.save(copy, "JPEG", quality=75)  # Pillow writes no XMP or C2PA it was not given
    assert b"c2pa" not in copy.read_bytes() and b"Iptc4xmpExt" not in copy.read_bytes()
    both = inspect(served, models_dir)
    assert both.returncode == 0 and "watermark: Swaparoony watermark found" in both.stdout, both.stdout
    stripped = inspect(copy, models_dir)
    assert stripped.returncode == 3, stripped.stdout + stripped.stderr
    assert "Swaparoony watermark found; no Content Credentials (stripped or re-saved)" in stripped.stdout
    assert "operator 7" in stripped.stdout


@pytest.mark.parametrize("clip_format", ["mp4", "webp", "gif"])
def test_a_clip_carries_the_watermark_and_an_mp4_made_again_without_metadata_is_still_found(
        marking: Server, models_dir: Path, tmp_path: Path, clip_format: str) -> None:
    response = httpx.post(marking.url + "/swap_image", files={"image": ("selfie.jpg", UPLOAD, "image/jpeg")},
                          data={"destination": "clip.mp4", "clip_format": clip_format}, timeout=120)
    assert response.status_code == 200, response.text
    served = tmp_path / f"served.{clip_format}"
    served.write_bytes(response.content)
    both = inspect(served, models_dir)
    assert both.returncode == 0 and "Swaparoony watermark found" in both.stdout and "operator 7" in both.stdout, both.stdout
    if clip_format == "mp4":  # decoded and encoded again, as a sharing app would: no XMP, no C2PA
        clip = decode_clip(response.content, ".mp4", ClipBounds())
        shared = tmp_path / "shared.mp4"
        shared.write_bytes(encode_clip(clip.frames, clip.timing, "mp4", 75))
        assert b"c2pa" not in shared.read_bytes() and b"Iptc4xmpExt" not in shared.read_bytes()
        stripped = inspect(shared, models_dir)
        assert stripped.returncode == 3, stripped.stdout + stripped.stderr
        assert "operator 7" in stripped.stdout


def real_photos() -> list[Path]:
    """Unmarked real colour photos that ship in packages: scikit-image's and insightface's."""
    bundled = Path(photos.__file__).parent
    return [*(bundled / name for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                                          "ihc.png", "hubble_deep_field.jpg", "retina.jpg")),
            Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"]


def test_unmarked_real_photos_are_not_reported_as_marked(models_dir: Path, tmp_path: Path) -> None:
    for photo in real_photos():
        found = rivagan.read(photo, models_dir)
        assert not found.found, (photo.name, found)
    result = inspect(real_photos()[0], models_dir)
    assert result.returncode == 1 and "watermark: none found" in result.stdout, result.stdout


def test_without_the_reader_inspect_says_how_to_install_it(marking: Server, models_dir: Path, tmp_path: Path) -> None:
    (data,) = pictures(marking, "/swap_image", "jpeg")
    path = tmp_path / "served.jpg"
    path.write_bytes(data)
    result = inspect(path, tmp_path / "no_models")
    assert result.returncode == 0, result.stdout  # the credentials still hold
    assert "swaparoony models pull --with rivagan_decoder" in result.stdout
