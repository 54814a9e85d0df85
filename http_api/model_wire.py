"""How the core's own request and result types cross between the API service and the model service, as they are.

BentoML 1.4.39 builds each API's input and output models with pydantic, and pydantic cannot describe the numpy
arrays inside the core's dataclasses (FaceSwapRequest, FaceSwapResult) by itself. Carried[T] tells it to take a T as
it is: the model service's calls are pickled (protocol 5, arrays out of band), so a T goes out as its fields and is
built again from them on the other side; no mirror type to keep in step. A field holding another core dataclass
(FaceSwapRequest's Enhancement) arrives as a dict, so it is built again by its declared type too.
tests/test_model_calls.py fails if an upgrade changes this.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic_core import core_schema

T = TypeVar("T")


class AsItIs:
    """Pydantic's view of a core dataclass: checked by its class, sent as its fields, built again from them."""

    def __get_pydantic_core_schema__(self, source: type[Any], handler: Any) -> core_schema.CoreSchema:
        if not dataclasses.is_dataclass(source):
            raise TypeError(f"Carried takes a dataclass, not {source!r}")
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, source) else built(source, value),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}),
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Any) -> dict[str, Any]:
        return {"type": "object"}  # the model service's calls are pickled; the schema is only shown in its /docs


def built(kind: type[T], fields: dict[str, Any]) -> T:
    """A dataclass from its sent fields, a field declared as a dataclass (or one or None) built again too."""
    nested = _nested(kind)  # type: ignore[arg-type]  # a class is hashable
    return kind(**{name: built(nested[name], value) if name in nested and isinstance(value, dict) else value
                   for name, value in fields.items()})


@functools.cache
def _nested(kind: type[Any]) -> dict[str, type[Any]]:
    """The fields of a dataclass declared as another dataclass, by name (read once per class)."""
    declared = {name: _dataclass_in(hint) for name, hint in get_type_hints(kind).items()}
    return {name: found for name, found in declared.items() if found is not None}


def _dataclass_in(hint: Any) -> type[Any] | None:
    """The dataclass a field is declared as: itself, or the one dataclass of an `X | None`."""
    candidates = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    found = [arg for arg in candidates if isinstance(arg, type) and dataclasses.is_dataclass(arg)]
    return found[0] if len(found) == 1 else None


Carried = Annotated[T, AsItIs()]
"""A core dataclass as a model service API's argument or answer: list[Carried[FaceSwapRequest]]."""
