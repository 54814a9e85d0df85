"""The BentoML patch in http_api/media_types.py: what it relies on, checked against the installed BentoML."""

from __future__ import annotations

import pytest

import service


@pytest.mark.parametrize("svc", [service.FaceModels, service.Swaparoony])
def test_each_pinned_media_type_is_what_bentoml_computes(svc: object) -> None:
    for name, api in svc.apis.items():  # type: ignore[attr-defined]
        spec = api.output_spec
        pinned = spec.media_type
        assert pinned, name
        spec.media_type = None
        try:
            assert spec.mime_type() == pinned, name
        finally:
            spec.media_type = pinned


def test_a_pinned_media_type_is_answered_without_building_a_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = service.FaceModels.apis["swap_faces"].output_spec
    monkeypatch.setattr(spec, "model_json_schema", classmethod(lambda *_, **__: pytest.fail("schema built per call")))
    assert spec.mime_type() == "application/json"
