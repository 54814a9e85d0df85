"""The generated models themselves: cost-faithful variants cost what the real files cost and answer the same."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from generated_models import (
    DETECTOR_COST, RECOGNIZER_COST, SWAPPER_COST, detector_model, draw_faces, plan_cost, recognizer_model,
)
from swaparoony.models.scrfd import letterbox


def session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_ballast_plans_cost_about_what_the_real_models_cost() -> None:
    assert plan_cost(DETECTOR_COST, 640)[0] == pytest.approx(10, rel=0.1)
    assert plan_cost(RECOGNIZER_COST, 112)[0] == pytest.approx(6, rel=0.1)
    gflops, params = plan_cost(SWAPPER_COST, 128)
    assert gflops == pytest.approx(174.7, rel=0.05) and params == pytest.approx(138e6, rel=0.02)


def test_cost_faithful_detector_and_recognizer_answer_like_the_small_ones() -> None:
    canvas, _ = letterbox(draw_faces((640, 640), [(160, 320), (480, 320)]))
    blob = ((canvas[..., ::-1].astype(np.float32) - 127.5) / 128).transpose(2, 0, 1)[None]
    small, heavy = session(detector_model()), session(detector_model(cost_faithful=True))
    for a, b in zip(small.run(None, {"input.1": blob}), heavy.run(None, {"input.1": blob})):
        assert np.allclose(a, b)
    crops = np.random.default_rng(0).uniform(-1, 1, (3, 3, 112, 112)).astype(np.float32)
    small, heavy = session(recognizer_model()), session(recognizer_model(cost_faithful=True))
    assert np.allclose(small.run(None, {"input.1": crops})[0], heavy.run(None, {"input.1": crops})[0], atol=1e-5)
