"""Every model family the service knows, by role: adding a family is its module and one line here.

Roles load in this order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import arcface, face_enhancer, face_occluder, face_parser, inswapper, rivagan, scrfd
from .family import ModelFamily
from .specs import ModelSpec

FAMILIES: dict[str, ModelFamily] = {family.role: family for family in (
    scrfd.FAMILY,
    arcface.FAMILY,
    inswapper.FAMILY,
    face_enhancer.FAMILY,
    face_parser.FAMILY,
    face_occluder.FAMILY,
    rivagan.FAMILY,
    rivagan.READER_FAMILY,
)}
Choices = Mapping[str, str | None]
"""A file key per role, where the service uses another file than the family's default (SWAPAROONY_DETECTOR); None
turns the role off (SWAPAROONY_WATERMARK=off)."""


def service_files(choices: Choices | None = None, models_dir: Path | None = None) -> tuple[ModelSpec, ...]:
    """The files a service with these choices loads, in registration order: one per role with a default or a choice,
    and, where models_dir is given, the optional families' files present there (the first or every one, as each
    family says)."""
    chosen = choices or {}
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise KeyError(f"no model family has the role(s) {unknown}; known: {sorted(FAMILIES)}")
    files: list[ModelSpec] = []
    for role, family in FAMILIES.items():
        key = chosen.get(role, family.default)
        if role in chosen and key is None:
            continue
        if key is not None:
            files.append(family.files[key])
        elif models_dir is not None and family.when_present != "never":
            present = [spec for spec in family.files.values() if (models_dir / spec.relative_path).is_file()]
            files += present[:1] if family.when_present == "first" else present
    return tuple(files)


def optional_files() -> tuple[ModelSpec, ...]:
    """The files only loaded when present or chosen (enhancers, parsers, occluders): `models pull --with KEY`."""
    return tuple(spec for family in FAMILIES.values() if family.default is None for spec in family.files.values())


ALL_FILES = tuple(spec for family in FAMILIES.values() for spec in family.files.values())
