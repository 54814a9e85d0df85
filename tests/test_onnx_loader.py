"""Loading model files: missing, corrupt, wrong contract, not the release file, CUDA asked for on CPU."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO
from generated_models import detector_model

from swaparoony.errors import AcceleratorUnavailable, ModelFileInvalid, ModelFileMissing
from swaparoony.models.cache import ModelCache
from swaparoony.models.inswapper import SWAPPER
from swaparoony.models.loaded_models import LoadedModels
from swaparoony.models.registry import service_files
from swaparoony.models.scrfd import DETECTOR
from swaparoony.models.onnx_loader import CPU, CUDA, default_providers, warn_if_not_release


def copy_models(models_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(models_dir, tmp_path / "models"))


def test_generated_models_load_through_the_real_loader(models_dir: Path) -> None:
    loaded = LoadedModels.load(models_dir)
    assert set(loaded.providers) == {"detector", "recognizer", "swapper", "watermark"}
    # On CPU batch-1 files are not re-batched by default (see test_batch_axis.py for when they are).
    assert loaded.batching == {"detector": False, "recognizer": True, "swapper": False, "watermark": True}


def test_missing_files_are_listed_with_paths_and_sources(tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissing) as caught:
        LoadedModels.load(tmp_path)
    for spec in service_files():
        assert str((tmp_path / spec.relative_path).resolve()) in str(caught.value)
        assert spec.sources[0].url in str(caught.value)


def test_files_in_the_wrong_layout_are_found_and_the_move_named(models_dir: Path, tmp_path: Path) -> None:
    # A data connection's bucket filled flat: every file at the top, none in buffalo_l/.
    for spec in service_files():
        shutil.copy(models_dir / spec.relative_path, tmp_path / Path(spec.relative_path).name)
    with pytest.raises(ModelFileMissing) as caught:
        LoadedModels.load(tmp_path)
    message = str(caught.value)
    assert f"{(tmp_path / 'buffalo_l' / 'det_10g.onnx').resolve()}" in message
    assert f"found {(tmp_path / 'det_10g.onnx').resolve()} instead: move it there" in message


def test_corrupt_file_names_the_file(models_dir: Path, tmp_path: Path) -> None:
    copied = copy_models(models_dir, tmp_path)
    (copied / SWAPPER.relative_path).write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ModelFileInvalid, match="inswapper_128.onnx.*corrupt"):
        LoadedModels.load(copied)


def test_wrong_contract_names_the_file_and_the_difference(models_dir: Path, tmp_path: Path) -> None:
    copied = copy_models(models_dir, tmp_path)
    onnx.save(detector_model(), str(copied / SWAPPER.relative_path))  # a detector where the swapper goes
    with pytest.raises(ModelFileInvalid, match=r"inswapper_128.onnx: not a usable swapper like inswapper_128: 1 inputs, expected 2"):
        LoadedModels.load(copied)


def test_missing_emap_is_refused(models_dir: Path, tmp_path: Path) -> None:
    copied = copy_models(models_dir, tmp_path)
    path = copied / SWAPPER.relative_path
    model = onnx.load(str(path))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((3,), np.float32), "tail"))
    onnx.save(model, str(path))
    with pytest.raises(ModelFileInvalid, match=r"last initializer has shape \(3,\)"):
        ModelCache(None).emap(path, SWAPPER)


def test_non_release_file_only_warns(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_not_release(models_dir / DETECTOR.relative_path, DETECTOR)
    assert "expected 16,923,827 (the release file)" in caplog.text


@pytest.mark.skipif(CUDA in default_providers(), reason="needs an onnxruntime without CUDA")
def test_cuda_asked_for_but_cpu_given_refuses_to_start(models_dir: Path) -> None:
    with pytest.raises(AcceleratorUnavailable, match="CUDA was asked for"):
        LoadedModels.load(models_dir, (CUDA, CPU))


def test_importing_the_service_leaves_onnx_for_the_files_parsed() -> None:
    """Every process BentoML starts imports service.py; onnx (0.65 s, most of it ml_dtypes) waits for a parse."""
    imported = subprocess.run([sys.executable, "-c", "import sys, service; print('onnx' in sys.modules)"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "False", imported.stderr[-2000:]
