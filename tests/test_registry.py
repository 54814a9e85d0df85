"""A model family plugs in by its module and one registry line: loaded by role, counted, checked by its contract and,
if it finishes swaps, applied by the swap pipeline to every swapped crop."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from swaparoony.errors import ModelFileInvalid
from swaparoony.models.family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.registry import FAMILIES, service_files
from swaparoony.models.specs import BATCH, FREE, ModelSpec, Normalisation, Source
from swaparoony.models.swap_pipeline import swap_faces
from swaparoony.types import FaceSwapRequest, Frame

NEGATIVE = ModelSpec(key="negative", role="finisher", relative_path="finisher/negative.onnx", size=None, sha256=None,
                     sources=(Source("https://example.invalid/negative.onnx"),), input_size=128, normalisation=Normalisation(0.0, 255.0),
                     inputs=((BATCH, 3, FREE, FREE),), outputs=((BATCH, 3, FREE, FREE),), licence="test only")


def negative_model() -> onnx.ModelProto:
    """A crop in [0, 1] to its negative: a finisher whose effect is plain to see."""
    shape = [1, 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Sub", ["one", "crop"], ["finished"])], "negative",
        [helper.make_tensor_value_info("crop", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("finished", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(np.ones((1,), np.float32), "one")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Negative(BatchedModel[Frame, Frame]):
    """The finisher's pre- and post-processing, as a family module would hold them."""

    def inputs(self, crops: Sequence[Frame]) -> list[np.ndarray]:
        return [self.blob(crops)]

    def answers(self, outputs: list[np.ndarray], count: int) -> list[Frame]:
        crops = np.clip(outputs[0].transpose(0, 2, 3, 1) * 255.0, 0, 255).round().astype(np.uint8)[..., ::-1]
        return [np.ascontiguousarray(crop) for crop in crops]


def _negative(opened: OpenedModel, options: RunOptions) -> Negative:
    return Negative(opened)


FINISHER = ModelFamily("finisher", {NEGATIVE.key: NEGATIVE}, NEGATIVE.key, _negative, finishes_swaps=True)


@pytest.fixture()
def registered(monkeypatch: pytest.MonkeyPatch) -> ModelFamily:
    monkeypatch.setitem(FAMILIES, FINISHER.role, FINISHER)  # the one line registry.py would get
    return FINISHER


def with_negative(models_dir: Path, tmp_path: Path) -> Path:
    copied = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (copied / NEGATIVE.relative_path).parent.mkdir()
    onnx.save(negative_model(), str(copied / NEGATIVE.relative_path))
    return copied


def request() -> FaceSwapRequest:
    rng = np.random.default_rng(5)
    return FaceSwapRequest([rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)],
                           [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)], [0, 0, 0])


def test_a_registered_family_is_loaded_counted_and_finishes_every_swapped_crop(models_dir: Path, tmp_path: Path,
                                                                               registered: ModelFamily) -> None:
    copied = with_negative(models_dir, tmp_path)
    assert service_files()[-1] == NEGATIVE  # pulled, imported and verified with the others
    loaded = LoadedModels.load(copied)
    assert loaded.batching["finisher"] is False and "finisher" in loaded.providers
    (finished,) = swap_faces(loaded, [request()])
    (plain,) = swap_faces(LoadedModels({role: model for role, model in loaded.roles.items() if role != "finisher"}),
                          [request()])
    assert loaded.runs == {"recognizer": 1 + 3, "swapper": 3, "finisher": 3}
    for got, swapped in zip(finished.crops, plain.crops):
        assert np.abs(got.astype(int) - (255 - swapped.astype(int))).max() <= 1
    assert finished.similarity != plain.similarity  # the identity score is of the finished crop


def test_a_family_loaded_only_when_chosen_is_not_needed_otherwise(models_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    optional = ModelFamily("finisher", {NEGATIVE.key: NEGATIVE}, None, _negative, finishes_swaps=True)
    monkeypatch.setitem(FAMILIES, optional.role, optional)
    assert NEGATIVE not in service_files() and service_files({"finisher": "negative"})[-1] == NEGATIVE
    assert "finisher" not in LoadedModels.load(models_dir).roles


def test_a_registered_familys_file_is_checked_by_its_contract(models_dir: Path, tmp_path: Path,
                                                              registered: ModelFamily) -> None:
    copied = with_negative(models_dir, tmp_path)
    model = negative_model()
    model.graph.output[0].type.tensor_type.shape.dim.pop()  # 3-D: not a crop
    onnx.save(model, str(copied / NEGATIVE.relative_path))
    with pytest.raises(ModelFileInvalid, match=r"negative.onnx: not a usable finisher like negative: output 'finished'"):
        LoadedModels.load(copied)
