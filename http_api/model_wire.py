"""How the core's own request and result types cross between the API service and the model service, as they are.

BentoML 1.4.39 builds each API's input and output models with pydantic, and pydantic cannot describe the numpy
arrays inside the core's dataclasses (FaceSwapRequest, FaceSwapResult) by itself. Carried[T] tells it to take a T as
it is: the model service's calls are pickled (protocol 5, arrays out of band), so a T goes out as its fields and is
built again from them on the other side; no mirror type to keep in step. Flat dataclasses only: a field holding
another dataclass would arrive as a dict. tests/test_model_calls.py fails if an upgrade changes this.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypeVar

from pydantic_core import core_schema

T = TypeVar("T")


class AsItIs:
    """Pydantic's view of a core dataclass: checked by its class, sent as its fields, built again from them."""

    def __get_pydantic_core_schema__(self, source: type[Any], handler: Any) -> core_schema.CoreSchema:
        if not dataclasses.is_dataclass(source):
            raise TypeError(f"Carried takes a dataclass, not {source!r}")
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, source) else source(**value),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}),
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "object"}  # the model service's calls are pickled; the schema is only shown in its /docs


Carried = Annotated[T, AsItIs()]
"""A core dataclass as a model service API's argument or answer: list[Carried[FaceSwapRequest]]."""
