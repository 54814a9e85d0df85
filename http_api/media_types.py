"""Each API's response media type worked out once, not on every response (a BentoML patch: see pin).

BentoML 1.4.39 answers every call of an API whose output is a plain type (the model service's lists of
arrays) by asking its output descriptor for a media type, and that builds the type's whole JSON schema
with pydantic each time: 8% of the model service's CPU per request under load (py-spy). A descriptor with
`media_type` set returns it at once, so it is set to what BentoML would have worked out.
"""

from __future__ import annotations

from typing import Any


def pin(service: Any) -> None:
    """Set each API's output media type to the one BentoML computes, so it is computed once, here.

    Relies on IOMixin.mime_type returning a class's `media_type` when it is set; tests/test_model_calls.py
    fails if an upgrade changes that or the types it computes.
    """
    for api in service.apis.values():
        spec = api.output_spec
        if spec.media_type is None:
            spec.media_type = spec.mime_type()
