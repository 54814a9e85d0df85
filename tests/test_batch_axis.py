"""Batch-1 models get a free-batch copy that is used only when it agrees with the original, item by item."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from generated_models import swapper_model, write_optional_models
from test_model_contract import CANVASES, count_runs, swap_items, swapped, with_file

from swaparoony.models.face_enhancer import EnhanceItem
from swaparoony.models.inswapper import SWAPPER, FaceSwapper
from swaparoony.models.loaded_models import LoadedModels


@pytest.fixture(scope="module")
def item_by_item(models_dir: Path) -> LoadedModels:
    return LoadedModels.load(models_dir, rebatch="off")


def test_a_swapper_pinned_to_batch_one_is_rebatched_and_swaps_a_batch_in_one_call(
        models_dir: Path, item_by_item: LoadedModels, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        rebatched = LoadedModels.load(models_dir, rebatch="on")
    assert "inswapper_128.onnx: runs batches as one call" in caplog.text
    assert rebatched.batching == {"detector": True, "recognizer": True, "swapper": True, "watermark": True}
    items = swap_items(item_by_item)
    calls = count_runs(rebatched.roles["swapper"])
    batched = swapped(rebatched, items)
    assert calls == [len(items)]
    for got, want in zip(batched, swapped(item_by_item, items)):
        assert np.abs(got.astype(int) - want).max() <= 1
    # The detector (outputs with the batch folded into the anchors) re-batches too, and finds the same faces.
    calls = count_runs(rebatched.roles["detector"])
    for got, want in zip(rebatched.run("detector", CANVASES), item_by_item.run("detector", CANVASES)):
        assert np.allclose(got, want, atol=1e-3)
    assert calls == [len(CANVASES)]


def test_codeformer_pinned_to_batch_one_runs_a_batch_per_weight_with_its_weight_kept_one_per_call(
        models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    copied = write_optional_models(with_file(models_dir, tmp_path, SWAPPER.relative_path, swapper_model()),
                                   enhancers=("codeformer",))
    with caplog.at_level(logging.INFO):
        rebatched = LoadedModels.load(copied, rebatch="on")
        item_by_item = LoadedModels.load(copied, rebatch="off")
    assert "codeformer.onnx: runs batches as one call" in caplog.text
    assert rebatched.batching["enhancer:codeformer"] is True
    rng = np.random.default_rng(3)
    items = [EnhanceItem(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), weight) for weight in (0.2, 0.9, 0.2)]
    calls = count_runs(rebatched.named("enhancer:codeformer"))
    for got, want in zip(rebatched.run("enhancer:codeformer", items), item_by_item.run("enhancer:codeformer", items)):
        assert np.abs(got.astype(int) - want).max() <= 1
    assert sorted(calls) == [1, 2]  # one call per weight


def test_a_graph_that_folds_the_batch_away_runs_item_by_item_and_says_why(
        models_dir: Path, tmp_path: Path, item_by_item: LoadedModels, caplog: pytest.LogCaptureFixture) -> None:
    copied = with_file(models_dir, tmp_path, SWAPPER.relative_path, swapper_model(batch="folded"))
    with caplog.at_level(logging.WARNING):
        loaded = LoadedModels.load(copied, rebatch="on")
    # Shape inference already sees the fold (a batch axis of 3 from the [3, 16384] Reshape); a fold it could not
    # see would fail the batch run or the comparison instead.
    assert "inswapper_128.onnx: runs batches item by item: the free-batch copy does not load" in caplog.text
    assert "has a batch axis of 3; it must be 1 or free" in caplog.text
    assert loaded.batching["swapper"] is False
    items = swap_items(item_by_item)
    calls = count_runs(loaded.roles["swapper"])
    assert all(np.array_equal(a, b) for a, b in zip(swapped(loaded, items), swapped(item_by_item, items)))
    assert calls == [1] * len(items)


def test_a_copy_that_runs_but_mixes_the_items_of_a_batch_is_not_used(
        models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    copied = with_file(models_dir, tmp_path, SWAPPER.relative_path, swapper_model(batch="mixing"))
    with caplog.at_level(logging.WARNING):
        loaded = LoadedModels.load(copied, rebatch="on")
    assert "runs batches item by item: output 'output' differs from item-by-item runs by up to" in caplog.text
    assert loaded.batching["swapper"] is False


def test_a_swapper_exported_with_a_free_batch_needs_no_copy(models_dir: Path, tmp_path: Path,
                                                           item_by_item: LoadedModels) -> None:
    copied = with_file(models_dir, tmp_path, SWAPPER.relative_path, swapper_model(batch="free"))
    loaded = LoadedModels.load(copied, rebatch="off")
    assert loaded.batching["swapper"] is True
    items = swap_items(item_by_item)
    calls = count_runs(loaded.roles["swapper"])
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(swapped(loaded, items), swapped(item_by_item, items)))
    assert calls == [len(items)]


def test_the_emap_comes_from_the_one_parse_or_the_cache_not_a_second_parse(models_dir: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from swaparoony.models.cache import ModelCache

    parses: list[str] = []
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda path, *a, **k: parses.append(Path(path).name) or real_load(path, *a, **k))
    cache = ModelCache(tmp_path / "state")
    first = LoadedModels.load(models_dir, rebatch="off", cache=cache)
    assert parses == ["inswapper_128.onnx"]  # item by item: parsed once, for its emap
    second = LoadedModels.load(models_dir, rebatch="off", cache=cache)
    assert parses == ["inswapper_128.onnx"]  # the emap and the hashes came from the cache
    assert np.array_equal(first.of(FaceSwapper).emap, second.of(FaceSwapper).emap)
    parses.clear()
    LoadedModels.load(models_dir, rebatch="on", cache=ModelCache(tmp_path / "other"))
    assert sorted(parses) == ["det_10g.onnx", "inswapper_128.onnx"]  # one parse each, for the copy and the emap
