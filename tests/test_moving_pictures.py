"""Clips in the gallery (GIF, animated WebP, MP4), swapped frame by frame through a real server with two API workers,
and the long routes as BentoML tasks: progress, cancel, a deadline, answers dropped after their time."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import av
import bentoml
import cv2
import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from browser import chromium, photo_in, swagger_ui
from conftest import Server, encode, metric, start_server, stop_server, upload_image, wait_for
from generated_models import draw_faces, gif_clip, moving_face_frames, mp4_clip
from test_content_credentials import active, manifest_store
from test_front_door import readme_block
from test_swagger_ui import shot, status_of, try_it_out
from swaparoony.engine import SWAPPED_CLIP

MOVING = moving_face_frames(12, absent=(8,))
"""A face moving 32 pixels right a frame, from (96, 160); not in frame 8."""
MOVING_MS = [80, 120] * 6
STEADY = moving_face_frames(36, start=(320, 160), step=(0, 0))
"""3 seconds at 12 fps with one face, and a sound track: the clip a booth would use."""
SEEN = 7.0
"""Mean difference (0-255) inside a face's box that says it was swapped; H.264's own noise on the drawn scene's
texture is about 4, a generated swap about 10."""


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("clips")
    (directory / "moving.gif").write_bytes(gif_clip(MOVING, MOVING_MS))
    (directory / "steady.mp4").write_bytes(mp4_clip(STEADY))
    (directory / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing a decoder can use")
    noise = np.random.default_rng(1)
    (directory / "too_long.gif").write_bytes(gif_clip([noise.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                                                       for _ in range(41)], [50] * 41))
    (directory / "too_slow.gif").write_bytes(gif_clip([noise.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                                                       for _ in range(2)], [3000, 3500]))
    (directory / "too_big.gif").write_bytes(gif_clip([noise.integers(0, 255, (600, 600, 3), dtype=np.uint8)
                                                      for _ in range(2)], [100, 100]))
    cv2.imwrite(str(directory / "one_face.jpg"), draw_faces((640, 640), [(320, 320)]))
    return directory


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, clips_dir: Path) -> Iterator[Server]:
    """Two API workers (a task's status may reach either), chunks of 24 swaps, clips of at most 40 frames, 6 seconds and
    300,000 pixels a frame, task answers kept 2 s and a 5-second task deadline."""
    running = start_server(tmp_path_factory.mktemp("clip_server"), {
        "SWAPAROONY_MODELS_DIR": str(models_dir), "SWAPAROONY_DESTINATIONS_DIR": str(clips_dir),
        "SWAPAROONY_REBATCH": "on", "SWAPAROONY_API_WORKERS": "2", "SWAPAROONY_MAX_ACTIVE_SWAPS": "24",
        "SWAPAROONY_MAX_CLIP_FRAMES": "40", "SWAPAROONY_MAX_CLIP_SECONDS": "6", "SWAPAROONY_MAX_CLIP_FRAME_PIXELS": "300000",
        "SWAPAROONY_TASK_RESULT_S": "2", "SWAPAROONY_TASK_DEADLINE_S": "5",
    })
    yield running
    stop_server(running.process)


def swap(server: Server, route: str, **fields: str) -> httpx.Response:
    answer = httpx.post(server.url + route, files={"image": ("me.jpg", encode(upload_image()), "image/jpeg")},
                        data=fields, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer


def video_frames(data: bytes) -> tuple[list[np.ndarray], list[float], list[str]]:
    """An MP4's frames, their start times in seconds, and its tracks' codecs."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.to_ndarray(format="bgr24")) for f in container.decode(stream)]
        codecs = [s.codec_context.name for s in container.streams]
    return [frame for _, frame in decoded], [start for start, _ in decoded], codecs


def box_change(before: np.ndarray, after: np.ndarray, centre: tuple[int, int]) -> float:
    x, y = centre
    return float(np.abs(after[y - 32:y + 32, x - 32:x + 32].astype(int) - before[y - 32:y + 32, x - 32:x + 32]).mean())


def test_destinations_say_which_move_and_why_a_clip_is_left_out(clip_server: Server) -> None:
    listed = {d["name"]: d for d in httpx.post(clip_server.url + "/destinations").json()}
    assert (listed["moving.gif"]["moving"], listed["moving.gif"]["frames"], listed["moving.gif"]["duration_s"]) == (True, 12, 1.2)
    assert (listed["steady.mp4"]["frames"], listed["steady.mp4"]["duration_s"], listed["steady.mp4"]["faces"]) == (36, 3.0, 1)
    assert (listed["one_face.jpg"]["moving"], listed["one_face.jpg"]["frames"]) == (False, 1)
    assert listed["broken.mp4"]["reason"].startswith("clip cannot be decoded")
    assert listed["too_long.gif"]["reason"] == "clip has more than 40 frames (SWAPAROONY_MAX_CLIP_FRAMES)"
    assert listed["too_slow.gif"]["reason"] == "clip lasts 6.5 s, over the 6-second limit (SWAPAROONY_MAX_CLIP_SECONDS)"
    assert listed["too_big.gif"]["reason"] == ("clip has 600x600 frames, over the 300,000-pixel limit per frame "
                                               "(SWAPAROONY_MAX_CLIP_FRAME_PIXELS)")


def test_a_moving_face_is_swapped_in_every_frame_it_is_in_and_only_there(clip_server: Server) -> None:
    answer = swap(clip_server, "/swap_image", destination="moving.gif")
    assert answer.headers["content-type"] == "video/mp4"
    frames, starts, _ = video_frames(answer.content)
    assert len(frames) == len(MOVING)
    assert [round(start * 1000) for start in starts] == list(np.cumsum([0, *MOVING_MS[:-1]]))
    for index, (source, result) in enumerate(zip(MOVING, frames)):
        here = (96 + 32 * index, 160)
        if index == 8:  # no face in this frame: it is the source frame (through the codec)
            assert box_change(source, result, here) < SEEN
        else:
            assert box_change(source, result, here) > SEEN, f"frame {index} not swapped where its face is"
        if index >= 3:  # where the face was at first is background again, and stays it
            assert box_change(source, result, (96, 160)) < SEEN


def test_webp_and_gif_keep_the_frame_times(clip_server: Server) -> None:
    for clip_format, media_type in (("webp", "image/webp"), ("gif", "image/gif")):
        answer = swap(clip_server, "/swap_image", destination="moving.gif", clip_format=clip_format)
        assert answer.headers["content-type"] == media_type
        with Image.open(io.BytesIO(answer.content)) as clip:
            times = []
            for index in range(clip.n_frames):
                clip.seek(index)
                clip.load()
                times.append(clip.info["duration"])
        assert times == MOVING_MS


def test_an_mp4_keeps_its_sound_and_its_length(clip_server: Server) -> None:
    frames, starts, codecs = video_frames(swap(clip_server, "/swap_image", destination="steady.mp4").content)
    assert codecs == ["h264", "aac"]
    assert len(frames) == 36 and abs(starts[-1] - 35 / 12) < 0.002


def test_a_36_frame_clip_is_one_batched_model_call_per_chunk(clip_server: Server) -> None:
    calls, items = 'swaparoony_model_calls_total{model="swapper"}', 'swaparoony_model_items_total{model="swapper"}'
    frames = "swaparoony_frames_swapped_sum"
    before = (metric(clip_server, calls), metric(clip_server, items), metric(clip_server, frames))
    swap(clip_server, "/swap_image", destination="steady.mp4")
    after = (metric(clip_server, calls), metric(clip_server, items), metric(clip_server, frames))
    assert [b - a for a, b in zip(before, after)] == [2, 36, 36]  # chunks of 24 (max_active_swaps): 24 + 12


def test_swap_and_swap_zip_list_clips_beside_pictures(clip_server: Server) -> None:
    listed = {i["destination_name"]: i for i in swap(clip_server, "/swap").json()["swapped_images"]}
    assert {name: (i["media_type"], i["frames"]) for name, i in listed.items()} == {
        "moving.gif": ("video/mp4", 12), "steady.mp4": ("video/mp4", 36), "one_face.jpg": ("image/jpeg", 1)}
    assert video_frames(base64.b64decode(listed["steady.mp4"]["image_data"]))[2] == ["h264", "aac"]
    with zipfile.ZipFile(io.BytesIO(swap(clip_server, "/swap_zip", clip_format="webp").content)) as archive:
        assert sorted(archive.namelist()) == ["moving.webp", "one_face.jpg", "results.json", "steady.webp"]


def test_the_sheet_and_the_original_routes_show_a_clips_first_swapped_frame_as_a_jpeg(clip_server: Server) -> None:
    assert swap(clip_server, "/swap_sheet").headers["content-type"] == "image/jpeg"
    still = swap(clip_server, "/swap_image", destination="moving.gif", clip_format="still")
    assert still.headers["content-type"] == "image/jpeg"
    assert box_change(MOVING[0], cv2.imdecode(np.frombuffer(still.content, np.uint8), cv2.IMREAD_COLOR), (96, 160)) > SEEN
    original = swap(clip_server, "/api/v1/swap").json()["swapped_images"]
    predicted = httpx.post(clip_server.url + "/v1/models/swaparoony-face-swap:predict",
                           json={"image": base64.b64encode(encode(upload_image())).decode()}, timeout=120).json()
    for images in (original, predicted["swapped_images"]):
        assert len(images) == 3
        assert {Image.open(io.BytesIO(base64.b64decode(i["image_data"]))).format for i in images} == {"JPEG"}


def test_a_clip_carries_content_credentials_naming_its_source(clip_server: Server) -> None:
    for clip_format, media_type in (("mp4", "video/mp4"), ("webp", "image/webp"), ("gif", "image/gif")):
        data = swap(clip_server, "/swap_image", destination="steady.mp4", clip_format=clip_format).content
        store = manifest_store(data, media_type)
        assert store["validation_state"] == "Valid"
        manifest = active(store)
        actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
        assert any(action.get("description") == SWAPPED_CLIP for action in actions)
        assert [i["title"] for i in manifest["ingredients"]] == ["steady.mp4"]


def status(server: Server, route: str, task_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}{route}/status", params={"task_id": task_id})


def test_a_task_from_the_bentoml_client_completes_with_its_progress_then_its_answer_is_dropped(
        clip_server: Server) -> None:
    with bentoml.SyncHTTPClient(clip_server.url) as client:
        client._opened_files = []  # BentoML 1.4.39's submit closes its files through this (README: "Tasks")
        task = client.swap.submit(image=Image.open(io.BytesIO(encode(upload_image()))), destinations=["steady.mp4"])
        seen = []
        wait_for(lambda: seen.append(status(clip_server, "/swap", task.id)) or seen[-1].json().get("status", seen[-1].text) != "in_progress",
                 "the task to finish")
        assert {answer.status_code for answer in seen} == {200}  # whichever API worker each poll reached
        assert seen[-1].json()["status"] == "completed"
        assert seen[-1].json()["progress"] == {"frames_done": 36, "frames_total": 36, "stage": "done"}
        result = task.get()
    (image,) = result["swapped_images"]
    assert (image["media_type"], image["frames"]) == ("video/mp4", 36)
    wait_for(lambda: status(clip_server, "/swap", task.id).status_code == 404, "the answer to be dropped", 30)
    gone = httpx.get(f"{clip_server.url}/swap/get", params={"task_id": task.id}).json()
    assert gone["code"] == "task_not_found" and "SWAPAROONY_TASK_RESULT_S" in gone["error"]
    assert not list(clip_server.workdir.rglob("task_result.db*"))  # BentoML's SQLite task store: never made


def test_curl_submits_a_clip_task_and_gets_the_clip_itself(clip_server: Server) -> None:
    submitted = httpx.post(clip_server.url + "/swap_image/submit", data={"destination": "moving.gif"},
                           files={"image": ("me.jpg", encode(upload_image()), "image/jpeg")}).json()
    wait_for(lambda: status(clip_server, "/swap_image", submitted["task_id"]).json()["status"] == "completed",
             "the task to complete")
    answer = httpx.get(clip_server.url + "/swap_image/get", params={"task_id": submitted["task_id"]})
    assert answer.headers["content-type"] == "video/mp4" and len(video_frames(answer.content)[0]) == 12
    retried = httpx.post(clip_server.url + "/swap_image/retry", params={"task_id": submitted["task_id"]})
    assert retried.status_code == 400 and retried.json()["code"] == "retry_not_offered"
    broken = httpx.post(clip_server.url + "/swap_image/submit", data={"destination": "moving.gif"},
                        files={"image": ("me.jpg", b"not a photo", "image/jpeg")}).json()
    wait_for(lambda: status(clip_server, "/swap_image", broken["task_id"]).json()["status"] == "failed", "the task to fail")
    assert "not an image" in status(clip_server, "/swap_image", broken["task_id"]).json()["reason"]
    answer = httpx.get(clip_server.url + "/swap_image/get", params={"task_id": broken["task_id"]})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_image"


def model_worker(server: Server) -> psutil.Process:
    return next(child for child in psutil.Process(server.process.pid).children(recursive=True)
                if "swaparoony-models" in child.cmdline())


def test_a_task_can_be_cancelled_and_one_past_its_deadline_fails_with_the_reason(clip_server: Server) -> None:
    worker = model_worker(clip_server)
    os.kill(worker.pid, signal.SIGSTOP)  # every model call now waits: the tasks stay running until we act
    try:
        upload = {"image": ("me.jpg", encode(upload_image()), "image/jpeg")}
        cancelled = httpx.post(clip_server.url + "/swap/submit", files=upload, data={"destinations": "steady.mp4"}).json()
        late = httpx.post(clip_server.url + "/swap/submit", files=upload, data={"destinations": "steady.mp4"}).json()
        running = status(clip_server, "/swap", cancelled["task_id"]).json()
        assert running["status"] == "in_progress" and running["progress"]["stage"] != "done"
        answer = httpx.put(clip_server.url + "/swap/cancel", params={"task_id": cancelled["task_id"]})
        assert answer.status_code == 200 and answer.json()["status"] == "canceled"
        got = httpx.get(clip_server.url + "/swap/get", params={"task_id": cancelled["task_id"]})
        assert got.status_code == 409 and got.json()["code"] == "task_cancelled"
        wait_for(lambda: status(clip_server, "/swap", late["task_id"]).json()["status"] == "failed", "the deadline", 30)
        assert "SWAPAROONY_TASK_DEADLINE_S" in status(clip_server, "/swap", late["task_id"]).json()["reason"]
        got = httpx.get(clip_server.url + "/swap/get", params={"task_id": late["task_id"]})
        assert got.status_code == 504 and got.json()["code"] == "task_deadline"
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    assert "Traceback" not in clip_server.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def test_swagger_ui_swaps_into_a_clip_and_submits_it_as_a_task(browser: object, clip_server: Server,
                                                                 tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    for page in swagger_ui(browser, clip_server.url, lambda request: None):
        block = try_it_out(page, "swaparoony__swap_image", photo, {"destination": "moving.gif", "clip_format": "webp"})
        assert status_of(block) == "200"
        picture = block.locator(".live-responses-table img").first
        picture.wait_for()
        assert picture.evaluate("img => img.complete && img.naturalWidth == 640")
        shot(block.locator(".live-responses-table"), "swap_image-clip-webp")
        block = try_it_out(page, "swaparoony__swap_image_submit", photo, {"destination": "moving.gif"})
        assert status_of(block) == "200"
        answer = block.locator(".live-responses-table tbody .response-col_description").first.inner_text()
        assert '"task_id"' in answer and "in_progress" in answer
        shot(block.locator(".live-responses-table"), "swap_image-submit")


def as_run_on_clips(text: str, server: Server, photo: Path) -> str:
    """The README's clip examples aimed at the clip server: its URL, a test photo, its 36-frame clip."""
    return (text.replace("http://localhost:3000", server.url).replace("destinations/grace_hopper.jpg", str(photo))
            .replace("astronaut_zoom.mp4", "steady.mp4"))


def test_the_readmes_clip_and_task_examples_run_as_written(clip_server: Server, tmp_path: Path) -> None:
    photo = photo_in(tmp_path)
    for containing in ("-o swapped.mp4", "/swap_zip/submit"):
        script = as_run_on_clips(readme_block("sh", containing), clip_server, photo)
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace("curl ", "curl -f ")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (containing, run.stderr)
    assert len(video_frames((tmp_path / "swapped.mp4").read_bytes())[0]) == 36
    with zipfile.ZipFile(tmp_path / "swapped.zip") as archive:
        assert "steady.mp4" in archive.namelist()
    script = as_run_on_clips(readme_block("python", "client.swap.submit"), clip_server, photo)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert video_frames((tmp_path / "steady.mp4").read_bytes())[2] == ["h264", "aac"]


def test_one_client_holds_at_most_a_quarter_of_a_workers_tasks(clip_server: Server) -> None:
    worker = model_worker(clip_server)
    os.kill(worker.pid, signal.SIGSTOP)  # the tasks stay running, so they stay held
    upload = {"image": ("me.jpg", encode(upload_image()), "image/jpeg")}
    try:
        answers = [httpx.post(clip_server.url + "/swap/submit", files=upload, data={"destinations": "one_face.jpg"})
                   for _ in range(17)]  # 8 a worker (a quarter of SWAPAROONY_MAX_TASKS=32), and two workers
        refused = [answer.json() for answer in answers if answer.status_code == 429]
        assert refused and all(r["code"] == "too_many_tasks" and "SWAPAROONY_MAX_TASKS" in r["error"] for r in refused)
        assert {answer.status_code for answer in answers} == {200, 429}
        accepted = [answer.json()["task_id"] for answer in answers if answer.status_code == 200]
        waiting = [status(clip_server, "/swap", task_id).json() for task_id in accepted]
        queued = [w for w in waiting if w["executed_at"] is None and w["progress"]["stage"] == "queued"]
        assert len(accepted) >= 9 and queued  # one worker took 5 or more; a quarter of 16 active requests run at once
        for answer in answers:
            if answer.status_code == 200:
                httpx.put(clip_server.url + "/swap/cancel", params={"task_id": answer.json()["task_id"]})
    finally:
        os.kill(worker.pid, signal.SIGCONT)


def test_each_clip_frame_counts_against_the_swap_limit_and_the_refusal_says_what_to_lower(clip_server: Server) -> None:
    files = {"image": ("me.jpg", encode(upload_image()), "image/jpeg")}
    refused = httpx.post(clip_server.url + "/swap_image", files=files, timeout=120,
                         data={"destination": "steady.mp4", "pixel_boost": "512"})  # 36 frames x 16 tiles = 576
    assert refused.status_code == 422 and refused.json()["code"] == "too_many_swaps"
    said = refused.json()["error"]
    assert said.startswith("This request asks for 576 swaps (36 faces, 36 of them in clip frames, in 1 destination")
    assert "clip_format=still" in said
    still = swap(clip_server, "/swap_image", destination="steady.mp4", pixel_boost="512", clip_format="still")
    assert still.headers["content-type"] == "image/jpeg"
