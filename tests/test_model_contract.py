"""Model files are accepted by structure: renamed and reordered exports, a free batch axis, other SCRFD
detectors; a file that cannot serve is refused with a message that names it and what is wrong."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from generated_models import detector_model, draw_faces, swapper_model

from swaparoony.errors import ModelFileInvalid
from swaparoony.models.arcface import FaceRecognizer
from swaparoony.models.inswapper import SWAPPER, FaceSwapper
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.scrfd import DETECTOR, DETECTORS, letterbox
from swaparoony.types import SwapItem

CANVASES = [letterbox(draw_faces((640, 640), centers))[0] for centers in ([(160, 320), (480, 320)], [(320, 320)], [])]


def with_file(models_dir: Path, tmp_path: Path, relative_path: str, model: onnx.ModelProto) -> Path:
    """A copy of the generated models directory with one file replaced or added."""
    copied = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (copied / relative_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(copied / relative_path))
    return copied


@pytest.fixture(scope="module")
def reference(models_dir: Path) -> LoadedModels:
    return LoadedModels.load(models_dir)


def test_a_detector_with_other_names_and_order_finds_the_same_faces(models_dir: Path, tmp_path: Path,
                                                                    reference: LoadedModels) -> None:
    renamed = tuple(f"{kind}_{stride}" for stride in (8, 16, 32) for kind in ("score", "bbox", "kps"))
    copied = with_file(models_dir, tmp_path, DETECTOR.relative_path, detector_model(output_names=renamed, by_stride=True))
    loaded = LoadedModels.load(copied)
    assert loaded.roles["detector"].layout.output_names[:3] == ("score_8", "score_16", "score_32")
    for got, want in zip(loaded.run("detector", CANVASES), reference.run("detector", CANVASES)):
        assert np.array_equal(got, want)
    assert len(loaded.run("detector", CANVASES)[0]) == 2


def test_a_free_batch_detector_runs_a_batch_as_one_call(models_dir: Path, tmp_path: Path, reference: LoadedModels) -> None:
    copied = with_file(models_dir, tmp_path, DETECTOR.relative_path, detector_model(free_batch=True))
    loaded = LoadedModels.load(copied, rebatch="off")
    assert loaded.batching["detector"] is True
    calls = count_runs(loaded.roles["detector"])
    for got, want in zip(loaded.run("detector", CANVASES), reference.run("detector", CANVASES)):
        assert np.array_equal(got, want)
    assert calls == [3]  # three canvases, one session run


def test_a_swapper_with_its_inputs_the_other_way_round_swaps_the_same(models_dir: Path, tmp_path: Path,
                                                                      reference: LoadedModels) -> None:
    model = swapper_model()
    model.graph.input.reverse()  # source first, as some exports have it
    copied = with_file(models_dir, tmp_path, SWAPPER.relative_path, model)
    loaded = LoadedModels.load(copied)
    assert loaded.roles["swapper"].layout.input_names == ("target", "source")
    items = swap_items(reference)
    assert all(np.array_equal(a, b) for a, b in zip(swapped(loaded, items), swapped(reference, items)))


@pytest.mark.parametrize("detector", ["det_500m", "scrfd_10g_bnkps"])
def test_the_other_scrfd_detectors_are_chosen_by_one_setting(models_dir: Path, tmp_path: Path, reference: LoadedModels,
                                                            detector: str, caplog: pytest.LogCaptureFixture) -> None:
    copied = with_file(models_dir, tmp_path, DETECTORS[detector].relative_path, detector_model(by_stride=True))
    with caplog.at_level(logging.WARNING):
        loaded = LoadedModels.load(copied, choices={"detector": detector})
    assert f"no release checksum is known for {detector}" in caplog.text
    assert [len(found) for found in loaded.run("detector", CANVASES)] == [2, 1, 0]


def one_landmark_output_short() -> onnx.ModelProto:
    model = detector_model()
    del model.graph.output[-1]
    return model


@pytest.mark.parametrize(("model", "words"), [
    (detector_model(landmarks=False), "it has no landmark outputs; swapping needs an SCRFD detector with 5-point landmarks (kps)"),
    (one_landmark_output_short(), "2 outputs 10 wide (landmarks), expected 3 (one per stride)"),
])
def test_a_detector_that_cannot_serve_is_refused_with_the_reason(models_dir: Path, tmp_path: Path,
                                                                 model: onnx.ModelProto, words: str) -> None:
    copied = with_file(models_dir, tmp_path, DETECTOR.relative_path, model)
    with pytest.raises(ModelFileInvalid) as caught:
        LoadedModels.load(copied)
    assert str(caught.value) == f"{copied / DETECTOR.relative_path}: not a usable detector like det_10g: {words}"


def test_a_batch_axis_fixed_at_another_size_is_refused(models_dir: Path, tmp_path: Path) -> None:
    model = swapper_model()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    copied = with_file(models_dir, tmp_path, SWAPPER.relative_path, model)
    with pytest.raises(ModelFileInvalid, match="batch axis of 4; it must be 1 or free"):
        LoadedModels.load(copied)


def swap_items(models: LoadedModels) -> list[SwapItem]:
    rng = np.random.default_rng(3)
    identities = models.of(FaceRecognizer)([rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(4)])
    latents = models.of(FaceSwapper).latents(identities)
    return [SwapItem(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), latent) for latent in latents]


def swapped(models: LoadedModels, items: list[SwapItem]) -> list[np.ndarray]:
    """The swapper's crops for these items, through its counted batch run."""
    return models.of(FaceSwapper)(items)


def count_runs(adapter: object) -> list[int]:
    """Record the batch size of every run of the adapter's session (a spy on the real session, which still runs)."""
    calls: list[int] = []
    session = adapter.session  # type: ignore[attr-defined]
    real_run = session.run

    def run(names, feeds, *args):  # noqa: ANN001, ANN202
        calls.append(next(iter(feeds.values())).shape[0])
        return real_run(names, feeds, *args)

    adapter.session = type("Spied", (), {"run": staticmethod(run), "get_providers": session.get_providers})()  # type: ignore[attr-defined]
    return calls
