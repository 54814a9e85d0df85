"""A model family plugs in by its module and one registry line: loaded by role (when chosen, or when its file is
present, as the family says), counted, and checked by its contract; the real optional families (enhancers, parser,
occluder) load only when their files are there."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from swaparoony.errors import ModelFileInvalid, ModelsUnavailable
from swaparoony.models.family import BatchedModel, ModelFamily, OpenedModel, RunOptions
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.registry import FAMILIES, service_files
from swaparoony.models.specs import BATCH, FREE, ModelSpec, Normalisation, Source
from swaparoony.settings import Settings
from swaparoony.types import Frame

from generated_models import write_optional_models

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


FINISHER = ModelFamily("finisher", {NEGATIVE.key: NEGATIVE}, None, _negative, when_present="first")


@pytest.fixture()
def registered(monkeypatch: pytest.MonkeyPatch) -> ModelFamily:
    monkeypatch.setitem(FAMILIES, FINISHER.role, FINISHER)  # the one line registry.py would get
    return FINISHER


def with_negative(models_dir: Path, tmp_path: Path) -> Path:
    copied = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (copied / NEGATIVE.relative_path).parent.mkdir()
    onnx.save(negative_model(), str(copied / NEGATIVE.relative_path))
    return copied


def test_a_registered_family_is_loaded_when_its_file_is_there_and_counted(models_dir: Path, tmp_path: Path,
                                                                         registered: ModelFamily) -> None:
    assert NEGATIVE not in service_files(None, models_dir) and "finisher" not in LoadedModels.load(models_dir).roles
    copied = with_negative(models_dir, tmp_path)
    assert service_files(None, copied)[-1] == NEGATIVE  # pulled, imported and verified with the others
    loaded = LoadedModels.load(copied)
    assert loaded.batching["finisher"] is False and "finisher" in loaded.providers
    crops = [np.random.default_rng(i).integers(0, 256, (128, 128, 3), dtype=np.uint8) for i in range(3)]
    finished = loaded.run("finisher", crops)
    assert loaded.runs == {"finisher": 3}
    for got, crop in zip(finished, crops):
        assert np.abs(got.astype(int) - (255 - crop.astype(int))).max() <= 1


def test_a_family_loaded_only_when_chosen_is_not_needed_otherwise(models_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    optional = ModelFamily("finisher", {NEGATIVE.key: NEGATIVE}, None, _negative)
    monkeypatch.setitem(FAMILIES, optional.role, optional)
    assert NEGATIVE not in service_files() and service_files({"finisher": "negative"})[-1] == NEGATIVE
    assert "finisher" not in LoadedModels.load(models_dir).roles


def test_enhancers_parser_and_occluder_load_only_when_present_every_enhancer_and_the_first_of_the_others(
        models_dir: Path, tmp_path: Path) -> None:
    assert set(LoadedModels.load(models_dir).files()) == {"detector", "recognizer", "swapper", "watermark"}
    copied = write_optional_models(Path(shutil.copytree(models_dir, tmp_path / "models")))
    loaded = LoadedModels.load(copied)
    assert loaded.files() == {"detector": ["det_10g"], "recognizer": ["w600k_r50"], "swapper": ["inswapper_128"],
                              "watermark": ["rivagan_encoder"], "enhancer": ["gfpgan_1.4", "codeformer"], "face_parser": ["bisenet_resnet_34"],
                              "face_occluder": ["xseg_1"]}
    assert set(loaded.roles) >= {"enhancer:gfpgan_1.4", "enhancer:codeformer", "face_parser", "face_occluder"}


def test_a_registered_familys_file_is_checked_by_its_contract(models_dir: Path, tmp_path: Path,
                                                              registered: ModelFamily) -> None:
    copied = with_negative(models_dir, tmp_path)
    model = negative_model()
    model.graph.output[0].type.tensor_type.shape.dim.pop()  # 3-D: not a crop
    onnx.save(model, str(copied / NEGATIVE.relative_path))
    with pytest.raises(ModelFileInvalid, match=r"negative.onnx: not a usable finisher like negative: output 'finished'"):
        LoadedModels.load(copied)


def test_the_watermark_encoder_is_required_unless_the_watermark_is_off(models_dir: Path, tmp_path: Path) -> None:
    without = Path(shutil.copytree(models_dir, tmp_path / "models"))
    (without / "rivagan_encoder.onnx").unlink()
    with pytest.raises(ModelsUnavailable, match="rivagan_encoder.onnx"):
        LoadedModels.load(without)
    off = Settings(watermark="off").model_choices
    assert "watermark" not in LoadedModels.load(without, choices=off).files()
    assert "rivagan_decoder" not in {spec.key for spec in service_files(off, models_dir)}  # the reader is never served
