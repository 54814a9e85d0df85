"""The request path in-process on generated models: order, counts of model runs, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import UPLOAD_CENTERS, decode, encode, upload_image
from generated_models import moving_face_frames, mp4_clip
from swaparoony.engine import SwapEngine, SwapOptions
from swaparoony.errors import FaceIdOutOfRange, NoFaceFound, TooManySwaps, UnknownDestination
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.model_calls import LocalModelCalls
from swaparoony.progress import Progress
from swaparoony.settings import Settings
from swaparoony.swap_chunks import swaps
from swaparoony.types import FaceSwapRequest, FaceSwapResult


@pytest.fixture(scope="module")
def loaded(models_dir: Path) -> LoadedModels:
    return LoadedModels.load(models_dir)


@pytest.fixture(scope="module")
def engine(loaded: LoadedModels, models_dir: Path, gallery_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwapEngine]:
    settings = Settings(models_dir=models_dir, destinations_dir=gallery_dir, state_dir=tmp_path_factory.mktemp("state"))
    started = asyncio.run(SwapEngine.start(LocalModelCalls(loaded), settings))
    yield started
    started.close()


def test_gallery_is_detected_once_in_one_batch(loaded: LoadedModels, models_dir: Path, gallery_dir: Path, tmp_path: Path) -> None:
    fresh = LoadedModels.load(models_dir)
    asyncio.run(SwapEngine.start(LocalModelCalls(fresh), Settings(destinations_dir=gallery_dir, state_dir=tmp_path))).close()
    assert fresh.runs == {"detector": 3, "watermark": 3}  # three readable destinations, each marked once, nothing else


def test_a_request_runs_one_detection_one_embedding_and_one_swap_per_destination(engine: SwapEngine, loaded: LoadedModels) -> None:
    loaded.runs.clear()
    outcome = asyncio.run(engine.swap(encode(upload_image()), SwapOptions()))
    assert len(outcome.swapped) == 2
    # the recognizer: the source face, then each result re-embedded for its identity score
    assert loaded.runs == {"detector": 1, "recognizer": 1 + 2, "swapper": 2}


def test_faces_come_back_left_to_right(engine: SwapEngine) -> None:
    faces = asyncio.run(engine.find_faces(encode(upload_image())))
    xs = [round((f.bbox[0] + f.bbox[2]) / 2) for f in faces]
    assert xs == sorted(x for x, _ in UPLOAD_CENTERS)


def test_the_result_depends_on_the_chosen_source_face(engine: SwapEngine) -> None:
    upload = encode(upload_image())
    results = [
        decode(asyncio.run(engine.swap(upload, SwapOptions(source_face_id=i, destinations=("one_face.jpg",), output_format="png"))).swapped[0].data)
        for i in (1, 2)
    ]
    assert np.abs(results[0].astype(int) - results[1]).max() > 5


def test_errors(engine: SwapEngine) -> None:
    upload = encode(upload_image())
    with pytest.raises(NoFaceFound):
        asyncio.run(engine.swap(encode(np.full((200, 200, 3), 30, np.uint8)), SwapOptions()))
    with pytest.raises(FaceIdOutOfRange, match="use 1 to 3"):
        asyncio.run(engine.swap(upload, SwapOptions(source_face_id=9)))
    with pytest.raises(UnknownDestination, match="nope.png"):
        asyncio.run(engine.swap(upload, SwapOptions(destinations=("nope.png",))))


class CountedModels(LocalModelCalls):
    """The real in-process models, recording the swaps in each swap call the engine makes."""

    def __init__(self, loaded: LoadedModels) -> None:
        super().__init__(loaded)
        self.calls: list[int] = []

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        self.calls.append(sum(swaps(request) for request in requests))
        return await super().swap_faces(requests)


@pytest.fixture(scope="module")
def budgeted(loaded: LoadedModels, engine: SwapEngine) -> Iterator[tuple[SwapEngine, CountedModels]]:
    """An engine allowed 8 swaps a request and 4 in flight: chunks of 4."""
    models = CountedModels(loaded)
    settings = replace(engine.settings, max_swaps_per_request=8, max_active_swaps=4)
    started = asyncio.run(SwapEngine.start(models, settings))
    yield started, models
    started.close()


def test_a_request_past_the_swap_budget_is_refused_before_any_model_run(budgeted: tuple[SwapEngine, CountedModels],
                                                                         loaded: LoadedModels) -> None:
    engine, models = budgeted
    loaded.runs.clear()
    with pytest.raises(TooManySwaps, match=r"^This request asks for 12 swaps \(3 faces in 2 destinations x 4 tiles at "
                                           r"pixel_boost 256\); the limit is 8 per request"):
        asyncio.run(engine.swap(encode(upload_image()), SwapOptions(destination_face_id=0, pixel_boost=256)))
    assert loaded.runs == {} and models.calls == []


def test_a_big_request_goes_in_chunks_and_gives_the_same_pictures(budgeted: tuple[SwapEngine, CountedModels],
                                                                 engine: SwapEngine) -> None:
    chunking, models = budgeted
    options = SwapOptions(destination_face_id=0, pixel_boost=256, destinations=("two_faces.png",), output_format="png")
    upload = encode(upload_image())
    models.calls.clear()
    (chunked,) = asyncio.run(chunking.swap(upload, options)).swapped
    assert models.calls == [4, 4]  # one face of 4 tiles a call
    (whole,) = asyncio.run(engine.swap(upload, options)).swapped  # the default budget: one call
    assert np.array_equal(decode(chunked.data), decode(whole.data))
    assert chunked.faces == whole.faces and chunking.work._free == chunking.work.capacity  # nothing left held


class ProgressSeen(LocalModelCalls):
    """The real in-process models, noting how far the request's progress says it is at each swap call."""

    def __init__(self, loaded: LoadedModels, progress: Progress) -> None:
        super().__init__(loaded)
        self.progress = progress
        self.seen: list[int] = []

    async def swap_faces(self, requests: list[FaceSwapRequest]) -> list[FaceSwapResult]:
        self.seen.append(self.progress.done)
        return await super().swap_faces(requests)


def test_a_clips_progress_moves_on_with_each_chunk(loaded: LoadedModels, models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "steady.mp4").write_bytes(mp4_clip(moving_face_frames(36, start=(320, 160), step=(0, 0)), sound=False))
    progress = Progress()
    models = ProgressSeen(loaded, progress)
    settings = Settings(models_dir=models_dir, destinations_dir=tmp_path / "clips", state_dir=tmp_path, max_active_swaps=12)
    clips = asyncio.run(SwapEngine.start(models, settings))
    try:
        (clip,) = asyncio.run(clips.swap(encode(upload_image()), SwapOptions(), progress)).swapped
    finally:
        clips.close()
    assert (clip.media_type, clip.frames) == ("video/mp4", 36)
    assert models.seen == [0, 12, 24]  # frames done when each chunk of 12 went out
    assert progress.described() == {"frames_done": 36, "frames_total": 36, "stage": "encoding"}
