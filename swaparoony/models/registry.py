"""Every model family the service knows, by role: adding a family is its module and one line here.

Roles load in this order, and the swap pipeline applies the families that finish swaps in it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import arcface, inswapper, scrfd
from .family import ModelFamily
from .specs import ModelSpec

FAMILIES: dict[str, ModelFamily] = {family.role: family for family in (
    scrfd.FAMILY,
    arcface.FAMILY,
    inswapper.FAMILY,
)}
Choices = Mapping[str, str]
"""A file key per role, where the service uses another file than the family's default (SWAPAROONY_DETECTOR)."""


def service_files(choices: Choices | None = None) -> tuple[ModelSpec, ...]:
    """The files a service with these choices needs, one per role that is loaded, in registration order."""
    chosen = choices or {}
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise KeyError(f"no model family has the role(s) {unknown}; known: {sorted(FAMILIES)}")
    keys = {role: chosen.get(role, family.default) for role, family in FAMILIES.items()}
    return tuple(FAMILIES[role].files[key] for role, key in keys.items() if key is not None)


ALL_FILES = tuple(spec for family in FAMILIES.values() for spec in family.files.values())
