"""Decoding in worker processes: the same pixels, a deadline that kills the work, a memory cap, recovery."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import psutil
import pytest
from conftest import encode, upload_image
from hostile_files import flat_rgba_png, flat_webp, progressive_jpeg, scan_bomb

from swaparoony.imaging.decode_worker import READY
from swaparoony.imaging.decoder_pool import BACKSTOP_FACTOR, STARTUP_TIMEOUT_S, DecoderPool
from swaparoony.errors import DecodeTooCostly, ServiceNotReady, UndecodableImage
from swaparoony.imaging.image_file import DecodeLimits
from swaparoony.settings import Settings
from swaparoony.types import DecodedImage
from swaparoony.imaging.vision import decode_image

LIMITS = DecodeLimits(max_bytes=64_000_000, max_pixels=40_000_000)
UPLOAD = encode(upload_image())
GIB = 1024 * 1024 * 1024


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    running = DecoderPool(processes=1, timeout_s=0.3, memory_bytes=1024 * 1024 * 1024)
    yield running
    running.close()


def worker_pid(pool: DecoderPool) -> int:
    return pool._idle.queue[0].process.pid


def test_the_worker_gives_the_same_pixels_as_decoding_here(pool: DecoderPool) -> None:
    decoded = pool.decode(UPLOAD, LIMITS)
    assert decoded.scale == 1.0 and decoded.frame.flags.writeable
    assert np.array_equal(decoded.frame, decode_image(UPLOAD, LIMITS.max_bytes, LIMITS.max_pixels))


def test_a_fresh_workers_start_up_is_not_charged_to_the_first_decode() -> None:
    # Loading Python, NumPy and Pillow takes a new worker far longer than 0.1 s; decoding a small JPEG does not.
    # A replacement worker started after a kill must not turn the next valid upload into a "too costly" 422.
    fresh = DecoderPool(processes=1, timeout_s=0.1, memory_bytes=1024 * 1024 * 1024)
    try:
        assert fresh.decode(encode(np.zeros((64, 64, 3), np.uint8)), LIMITS).frame.shape == (64, 64, 3)
    finally:
        fresh.close()


def test_a_worker_that_never_says_it_is_ready_is_replaced_and_answered_with_503() -> None:
    stuck = DecoderPool(processes=1, timeout_s=5.0, memory_bytes=1024 * 1024 * 1024, startup_timeout_s=0.3)
    try:
        worker = stuck._idle.queue[0]
        os.set_blocking(worker.replies, True)
        assert os.read(worker.replies, 1) == READY  # taken away: to the pool this worker never finishes starting
        os.set_blocking(worker.replies, False)
        with pytest.raises(ServiceNotReady, match="retry shortly"):
            stuck.decode(UPLOAD, LIMITS)
        assert worker.process.poll() is not None and stuck._idle.queue[0] is not worker
        # The replacement serves, given the usual start-up allowance: 0.3 s was only to refuse the stuck worker
        # quickly, and loading Python and the codecs takes longer than that on a busy machine.
        stuck.startup_timeout_s = STARTUP_TIMEOUT_S
        assert stuck.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)
    finally:
        stuck.close()


def test_a_decode_past_its_deadline_is_killed_and_refused(pool: DecoderPool) -> None:
    slow = scan_bomb(progressive_jpeg((4000, 4000)), copies=50, largest=True)  # 60 scans, about 2 s here
    before = worker_pid(pool)
    with pytest.raises(DecodeTooCostly, match="within 0.3 seconds"):
        pool.decode(slow, LIMITS)
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE
    assert worker_pid(pool) != before
    assert pool.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)  # a fresh worker serves the next one


def hold_the_gil() -> float:
    """Hold this interpreter's GIL in one C call, as a large JSON body being parsed holds the API worker's; seconds
    held. Big-integer arithmetic never lets the GIL go."""
    started = time.perf_counter()
    3 ** 4_000_000  # noqa: B018 (about half a second)
    return time.perf_counter() - started


def decode_in_a_thread(pool: DecoderPool) -> tuple[Future[DecodedImage], int]:
    """The decode's outcome, and the thread that waits on it."""
    outcome: Future[DecodedImage] = Future()

    def run() -> None:
        try:
            outcome.set_result(pool.decode(UPLOAD, LIMITS))
        except Exception as exc:  # noqa: BLE001 (handed to the test through the future)
            outcome.set_exception(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return outcome, thread.ident or 0


def waiting_on_the_worker(thread_id: int) -> bool:
    """Whether the thread is in the pool's wait on a worker pipe (its deadline set, the request on its way)."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None and frame.f_code.co_name != "_wait":
        frame = frame.f_back
    return frame is not None


def test_a_finished_decode_is_not_refused_while_its_caller_waits_for_the_gil() -> None:
    # While the API worker's event loop parses a JSON bomb, the thread waiting on a decode cannot run: the worker
    # finishes in milliseconds and its reply (1.2 MB, more than a pipe holds) waits. That wait is not the image's.
    pool = DecoderPool(processes=1, timeout_s=0.1, memory_bytes=GIB)
    try:
        pool.decode(UPLOAD, LIMITS)  # started and warm
        for _ in range(100):  # a few tries: now and then the caller reads the whole reply before this thread looks
            outcome, thread_id = decode_in_a_thread(pool)
            while not waiting_on_the_worker(thread_id) and not outcome.done():  # a spin: the caller must not get far
                pass
            if not outcome.done():
                break
            outcome.result()
        else:
            pytest.fail("the caller was never seen waiting on the worker")
        held = hold_the_gil()
        assert outcome.result(timeout=30).frame.shape == (640, 640, 3)
        assert held > BACKSTOP_FACTOR * pool.timeout_s  # longer than even the wall-clock backstop
    finally:
        pool.close()


def test_a_stopped_worker_is_ended_by_the_wall_clock_backstop_and_replaced() -> None:
    # A worker that spends no CPU (stopped, or starved on an overloaded node) never reaches its CPU deadline.
    pool = DecoderPool(processes=1, timeout_s=0.2, memory_bytes=GIB)
    try:
        pool.decode(UPLOAD, LIMITS)
        stopped = worker_pid(pool)
        psutil.Process(stopped).suspend()
        started = time.monotonic()
        with pytest.raises(ServiceNotReady, match="overloaded; retry shortly"):
            pool.decode(UPLOAD, LIMITS)
        assert BACKSTOP_FACTOR * pool.timeout_s <= time.monotonic() - started < 10
        assert worker_pid(pool) != stopped and not psutil.pid_exists(stopped)
        assert pool.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)
    finally:
        pool.close()


def test_a_decode_past_the_memory_cap_fails_alone() -> None:
    small = DecoderPool(processes=1, timeout_s=30, memory_bytes=200 * 1024 * 1024)
    try:
        with pytest.raises(DecodeTooCostly, match="memory"):
            small.decode(flat_rgba_png((6000, 6000)), LIMITS)  # about 450 MB at full size, over the 200 MB cap
        assert small.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)
    finally:
        small.close()


@pytest.mark.parametrize("kind", ["webp", "rgba-png"])
def test_the_largest_allowed_images_decode_within_the_default_memory_cap(kind: str) -> None:
    # 40 MP at the default SWAPAROONY_MAX_PIXELS. A lossless WebP of it is 38 bytes; decoded through Pillow's load()
    # it took 777 MiB of address space (libwebp's canvases, its frame and Pillow's copy), past the 714 MiB cap.
    data = flat_webp((16000, 2500)) if kind == "webp" else flat_rgba_png((8000, 5000))
    pool = DecoderPool(processes=1, timeout_s=30, memory_bytes=Settings().decode_memory_bytes)
    try:
        full = pool.decode(data, LIMITS)  # a destination keeps its size
        assert full.frame.shape[:2] == ((2500, 16000) if kind == "webp" else (5000, 8000))
        assert (full.frame[100, 100] == (147, 187, 227)).all()  # (200, 120, 40) half transparent, on white, BGR
        upload = pool.decode(data, DecodeLimits(LIMITS.max_bytes, LIMITS.max_pixels, long_side=1920))
        assert max(upload.frame.shape) < 3840 and (upload.frame[100, 100] == full.frame[100, 100]).all()
    finally:
        pool.close()


def test_a_worker_killed_while_idle_is_replaced_without_failing_the_next_image(pool: DecoderPool) -> None:
    psutil.Process(worker_pid(pool)).kill()
    psutil.Process(worker_pid(pool)).wait(10)
    assert pool.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)


def test_errors_come_back_as_the_same_domain_errors(pool: DecoderPool) -> None:
    with pytest.raises(UndecodableImage, match="JPEG, PNG, WebP, HEIC or AVIF"):
        pool.decode(b"not an image at all", LIMITS)


def test_a_worker_outlives_sigterm_so_a_draining_server_can_still_decode(pool: DecoderPool) -> None:
    # BentoML's supervisor sends SIGTERM to the API worker's children while the API worker drains.
    pool.decode(UPLOAD, LIMITS)  # the worker is up
    pid = worker_pid(pool)
    psutil.Process(pid).terminate()
    assert pool.decode(UPLOAD, LIMITS).frame.shape == (640, 640, 3)
    assert worker_pid(pool) == pid
