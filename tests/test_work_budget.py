"""The work budget per request (issue 25): its cost counted before any model call, admission by weight, big
requests in chunks, and no further chunk once a request is cut by its deadline.

Pure units first (the count, the chunks, the weighted semaphore), then one real server on 127.0.0.1 with small
limits and a swapper that costs about 14 ms a tile on 2 cores, so a request runs long enough to be cut.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import cv2
import httpx
import numpy as np
import onnx
import pytest

import generated_models
from conftest import Server, decode, encode, metric, start_server, stop_server, upload_image, wait_for
from generated_models import FACE_SIDE, draw_faces, swapper_model, write_models
from swaparoony.errors import TooManySwaps
from swaparoony.models.inswapper import SWAPPER
from swaparoony.swap_chunks import chunked, joined, swaps
from swaparoony.swap_cost import SwapCost, refuse_past, tiles_per_face
from swaparoony.swap_plan import Planned, SwapOptions
from swaparoony.types import FaceSwapRequest, FaceSwapResult
from swaparoony.work_budget import WorkBudget


def in_flight(budget: WorkBudget) -> int:
    """Swaps the budget holds now (only these tests look)."""
    return budget.capacity - budget._free


def waiting(budget: WorkBudget) -> int:
    """Shares queued behind the ones held."""
    return len(budget._waiting)


# --- the cost count -------------------------------------------------------------------------------------------

def planned(*faces: int) -> list[Planned]:
    """A plan of destinations taking this many faces each (the count reads only the pairs)."""
    return [Planned(SimpleNamespace(clip=None), tuple((1, face) for face in range(1, count + 1)))  # type: ignore[arg-type]
            for count in faces]


@pytest.mark.parametrize(("boost", "tiles"), [(128, 1), (256, 4), (512, 16)])
def test_a_face_costs_its_pixel_boost_tiles(boost: int, tiles: int) -> None:
    assert tiles_per_face(boost) == tiles
    assert SwapCost.of(planned(4, 4, 1), boost).swaps == 9 * tiles


def test_the_attack_is_counted_and_refused_with_what_to_lower() -> None:
    cost = SwapCost.of(planned(*[4] * 8), 512)
    assert (cost.faces, cost.destinations, cost.swaps) == (32, 8, 512)
    refuse_past(cost, SwapOptions(destination_face_id=0, pixel_boost=512), 512)  # the largest booth request fits
    with pytest.raises(TooManySwaps) as refused:
        refuse_past(cost, SwapOptions(destination_face_id=0, pixel_boost=512), 511)
    assert str(refused.value) == (
        "This request asks for 512 swaps (32 faces in 8 destinations x 16 tiles at pixel_boost 512); the limit is 511 "
        "per request. Ask for fewer destinations, a lower pixel_boost (the same faces are 32 at 128, 128 at 256 swaps) "
        "or a destination_face_id instead of 0 (which means every face of each destination).")
    assert (refused.value.status, refused.value.short) == (422, "too_many_swaps")


def test_the_advice_fits_the_request() -> None:
    with pytest.raises(TooManySwaps) as refused:
        refuse_past(SwapCost.of(planned(*[1] * 600), 128), SwapOptions(), 512)
    assert str(refused.value).endswith("the limit is 512 per request. Ask for fewer destinations.")
    with pytest.raises(TooManySwaps, match=r"fewer face_map pairs\.$"):
        refuse_past(SwapCost.of(planned(2, 2), 512), SwapOptions(face_map=((1, 1), (2, 2)), pixel_boost=512), 16)


# --- the chunks -----------------------------------------------------------------------------------------------

def request_of(faces: int, size: int, sources: int = 1) -> FaceSwapRequest:
    """Targets filled with their own index, sources with theirs, so every piece can be traced."""
    return FaceSwapRequest([np.full((112, 112, 3), s, np.uint8) for s in range(sources)],
                           [np.full((size, size, 3), t, np.uint8) for t in range(faces)],
                           [t % sources for t in range(faces)], color_match=True)


def test_a_request_that_fits_a_chunk_is_one_call_unchanged() -> None:
    request = request_of(4, 512)
    assert swaps(request) == 64
    (whole,) = chunked(request, 64)
    assert whole is request
    many = request_of(64, 128)
    assert len(chunked(many, 64)) == 1 and len(chunked(many, 63)) == 2


def test_a_big_request_is_cut_by_whole_faces_in_order_with_the_sources_each_uses() -> None:
    request = request_of(10, 256, sources=3)  # 40 swaps; 16 a chunk: 4 faces a chunk
    parts = chunked(request, 16)
    assert [len(part.targets) for part in parts] == [4, 4, 2]
    assert all(swaps(part) <= 16 and part.color_match for part in parts)
    assert [int(t[0, 0, 0]) for part in parts for t in part.targets] == list(range(10))
    for part in parts:  # each pair still names the same upload face
        assert [int(part.sources[p][0, 0, 0]) for p in part.pairs] == [int(t[0, 0, 0]) % 3 for t in part.targets]
    lone = chunked(request_of(3, 512), 8)  # a face is never split: one face a call past the chunk
    assert [len(part.targets) for part in lone] == [1, 1, 1]


def test_the_answers_are_joined_in_order() -> None:
    answers = [FaceSwapResult([np.full((2, 2, 3), i, np.uint8)], [i / 10]) for i in range(3)]
    whole = joined(answers)
    assert [int(c[0, 0, 0]) for c in whole.crops] == [0, 1, 2] and whole.similarity == [0.0, 0.1, 0.2]


# --- the weighted semaphore -----------------------------------------------------------------------------------

async def settle() -> None:
    """Let every ready task run (bounded)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_shares_run_together_up_to_the_capacity_then_wait() -> None:
    async def scenario() -> None:
        budget = WorkBudget(64)
        held = [await budget.acquire(16) for _ in range(4)]
        assert in_flight(budget) == 64
        late = asyncio.ensure_future(budget.acquire(1))
        await settle()
        assert not late.done() and waiting(budget) == 1
        budget.release(held[0])
        assert await late == 1 and in_flight(budget) == 49

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_first_come_first_served_so_a_big_share_is_not_starved() -> None:
    async def scenario() -> None:
        budget = WorkBudget(64)
        order: list[str] = []

        async def job(name: str, swaps: int) -> None:
            async with budget.share(swaps):
                order.append(name)
                await asyncio.sleep(0.01)

        first = await budget.acquire(48)  # 16 left
        big = asyncio.ensure_future(job("big", 64))
        await settle()
        small = [asyncio.ensure_future(job(f"small{i}", 4)) for i in range(3)]  # would fit in the 16 left
        await settle()
        assert order == []  # queued behind the big one, not past it
        budget.release(first)
        await asyncio.gather(big, *small)
        assert order == ["big", "small0", "small1", "small2"]
        assert in_flight(budget) == 0 and waiting(budget) == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_cancelled_waiter_leaves_the_queue_and_lets_the_next_go() -> None:
    async def scenario() -> None:
        budget = WorkBudget(10)
        held = await budget.acquire(8)
        big = asyncio.ensure_future(budget.acquire(10))
        small = asyncio.ensure_future(budget.acquire(2))
        await settle()
        assert not small.done()  # behind the big one
        big.cancel()
        assert await small == 2 and waiting(budget) == 0
        budget.release(held)
        budget.release(2)
        assert in_flight(budget) == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_share_granted_then_cancelled_is_given_back() -> None:
    async def scenario() -> None:
        budget = WorkBudget(10)
        held = await budget.acquire(10)
        waiter = asyncio.ensure_future(budget.acquire(5))
        await settle()
        budget.release(held)  # granted to the waiter, which has not run yet
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert in_flight(budget) == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_share_past_the_capacity_runs_alone() -> None:
    async def scenario() -> None:
        budget = WorkBudget(16)
        async with budget.share(64) as held:
            assert held == 16 and in_flight(budget) == 16
        assert in_flight(budget) == 0

    asyncio.run(asyncio.wait_for(scenario(), 10))
    with pytest.raises(ValueError, match="at least 1"):
        WorkBudget(0)


# --- through a real server ------------------------------------------------------------------------------------

FOUR = [(160, 160), (480, 160), (160, 480), (480, 480)]
PORTRAITS = [f"four_{i}.png" for i in range(9)]
"""Nine 640x640 portraits of four faces: all of them at pixel_boost 512 are 576 swaps, past the limit of 512."""
LIMIT, ACTIVE, TIMEOUT_S = 512, 4, 3
"""4 in flight: a chunk is four faces at pixel_boost 128, and one face (16 swaps, the whole budget) at 512. The 3 s
deadline cuts 8 portraits at 512 (512 swaps in 32 calls, 8 s on 2 cores) and leaves 2 portraits at 128 (8 swaps in
2 calls, 0.4 s; four times that on a machine busy with other work) and a one-face swap well inside it."""
TILE_COST = [(3, 64, 2, 1), (64, 64, 1, 10)]
"""A swapper ballast of 3 GFLOPs a tile, about 14 ms on 2 cores in batches of 16 (the real inswapper is 175): long
requests without slow short ones."""
UPLOAD = encode(upload_image())
SWAPPER_ITEMS = 'swaparoony_model_items_total{model="swapper"}'
SWAPPER_CALLS = 'swaparoony_model_calls_total{model="swapper"}'
DETECTOR_ITEMS = 'swaparoony_model_items_total{model="detector"}'


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated models, the swapper given TILE_COST of compute per tile."""
    directory = write_models(tmp_path_factory.mktemp("slow_models"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generated_models, "SWAPPER_COST", TILE_COST)
        onnx.save(swapper_model(cost_faithful=True), str(directory / SWAPPER.relative_path))
    return directory


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory: pytest.TempPathFactory, slow_models: Path) -> Iterator[Server]:
    """One server with the small limits above, warmed up at both crop sizes the tests send."""
    portraits = tmp_path_factory.mktemp("four_face_portraits")
    for name in PORTRAITS:
        cv2.imwrite(str(portraits / name), draw_faces((640, 640), FOUR))
    running = start_server(tmp_path_factory.mktemp("budgeted"), {
        "SWAPAROONY_MODELS_DIR": str(slow_models), "SWAPAROONY_DESTINATIONS_DIR": str(portraits),
        "SWAPAROONY_REBATCH": "on", "SWAPAROONY_CONTENT_CREDENTIALS": "xmp", "SWAPAROONY_API_WORKERS": "1",
        "SWAPAROONY_MAX_SWAPS_PER_REQUEST": str(LIMIT), "SWAPAROONY_MAX_ACTIVE_SWAPS": str(ACTIVE),
        "SWAPAROONY_REQUEST_TIMEOUT_S": str(TIMEOUT_S)})
    for boost in ("512", "128"):  # ONNX Runtime's first run of each batch shape is slow
        assert post_swap(running, destinations="four_0.png", pixel_boost=boost).status_code == 200
    yield running
    stop_server(running.process)


def post_swap(server: Server, **fields: str) -> httpx.Response:
    return httpx.post(server.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                      data={"output_format": "png", **fields}, timeout=60)


def swapper_items(server: Server) -> float:
    return metric(server, SWAPPER_ITEMS)


def settled(server: Server, quiet_s: float = 1.5) -> float:
    """The swapper's item count once no swap has been counted for quiet_s (several chunks' time), bounded."""
    last, since = swapper_items(server), time.monotonic()

    def quiet() -> bool:
        nonlocal last, since
        now = swapper_items(server)
        if now != last:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= quiet_s

    wait_for(quiet, "the model service to stop swapping", 30)
    return last


def test_a_request_over_the_budget_is_refused_before_any_model_call(budgeted: Server) -> None:
    before = [metric(budgeted, series) for series in (SWAPPER_ITEMS, DETECTOR_ITEMS)]
    response = post_swap(budgeted, destination_face_id="0", pixel_boost="512")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "too_many_swaps"
    assert response.json()["error"].startswith(
        "This request asks for 576 swaps (36 faces in 9 destinations x 16 tiles at pixel_boost 512); the limit is 512 "
        "per request. Ask for fewer destinations, a lower pixel_boost")
    assert [metric(budgeted, series) for series in (SWAPPER_ITEMS, DETECTOR_ITEMS)] == before  # not even detected


def test_an_in_budget_large_request_is_chunked_and_its_pictures_are_right(budgeted: Server) -> None:
    items, calls = swapper_items(budgeted), metric(budgeted, SWAPPER_CALLS)
    response = post_swap(budgeted, destinations="four_0.png,four_1.png", destination_face_id="0")
    assert response.status_code == 200, response.text[:300]
    assert (swapper_items(budgeted), metric(budgeted, SWAPPER_CALLS)) == (items + 8, calls + 2)  # 4 faces a call
    original = draw_faces((640, 640), FOUR)
    half, around = FACE_SIDE // 2 - 8, FACE_SIDE + 16  # inside each face; the whole pasted crop
    for item in response.json()["swapped_images"]:
        assert [face["destination_face_id"] for face in item["faces"]] == [1, 2, 3, 4]
        result = decode(base64.b64decode(item["image_data"]))
        outside = np.ones(original.shape[:2], bool)
        for cx, cy in FOUR:
            inside = (slice(cy - half, cy + half), slice(cx - half, cx + half))
            changed = float(np.abs(result[inside].astype(int) - original[inside]).mean())
            assert changed > 10, (item["destination_name"], cx, cy)
            outside[cy - around : cy + around, cx - around : cx + around] = False
        assert np.array_equal(result[outside], original[outside]), item["destination_name"]


def test_a_request_cut_by_its_deadline_sends_no_further_chunk_and_the_next_one_is_served(budgeted: Server) -> None:
    before = swapper_items(budgeted)
    cut = post_swap(budgeted, destinations=",".join(PORTRAITS[:8]), destination_face_id="0", pixel_boost="512")
    at_504 = swapper_items(budgeted)
    assert cut.status_code == 504 and cut.json()["code"] == "timeout", cut.text[:300]
    done = settled(budgeted)
    assert done - at_504 <= 16, (before, at_504, done)  # at most the call that was at the model service: one face
    assert done - before < 8 * 4 * 16, (before, at_504, done)  # the rest of the request never ran
    after = post_swap(budgeted, destinations="four_2.png")
    assert after.status_code == 200, after.text[:300]


def test_a_client_that_hangs_up_stops_its_model_work(budgeted: Server) -> None:
    before = settled(budgeted)
    request = httpx.Request("POST", budgeted.url + "/swap", files={"image": ("me.jpg", UPLOAD, "image/jpeg")},
                            data={"output_format": "png", "destinations": ",".join(PORTRAITS[:8]),
                                  "destination_face_id": "0", "pixel_boost": "512"})
    head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    url = urlparse(budgeted.url)
    connection = socket.create_connection((url.hostname, url.port), timeout=30)
    connection.sendall(f"POST /swap HTTP/1.1\r\n{head}\r\n".encode() + request.read())
    wait_for(lambda: swapper_items(budgeted) > before, "the request's first chunk to be swapped")
    connection.close()  # the person gave up: no answer is read
    done = settled(budgeted)
    assert done - before < 8 * 4 * 16, (before, done)  # the rest of the request never ran
    wait_for(lambda: "the client closed the connection before its answer" in budgeted.log(), "the hang-up's line")
    assert post_swap(budgeted, destinations="four_2.png").status_code == 200
