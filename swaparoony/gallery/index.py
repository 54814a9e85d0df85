"""The gallery's optional index file: a display title, an order and the swappable faces of each portrait.

One file (`gallery.json` beside the portraits) rather than a sidecar per image, so that a ConfigMap or
a booth operator changes the whole arrangement in one place. It is read on every reload that sees it
change; a broken index is reported and ignored, so the portraits stay usable in name order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..imaging.face_masks import MASK_TYPES
from ..models.face_parser import REGIONS

logger = logging.getLogger(__name__)

INDEX_NAME = "gallery.json"
MAX_INDEX_BYTES = 1024 * 1024
MAX_TITLE_CHARS = 200
EXAMPLE = '{"astronaut.png": {"title": "Astronaut", "order": 1, "faces": [1], "mask": ["occlusion"]}}'
FIELDS = ("title", "order", "faces", "mask", "mask_regions")


@dataclass(frozen=True)
class DestinationInfo:
    """What the operator says about one portrait; None: not said (name order, every face)."""

    title: str | None = None
    order: int | None = None
    faces: tuple[int, ...] | None = None
    """The 1-based faces people may swap into; None: all of them."""
    mask: tuple[str, ...] | None = None
    """The masks its faces are pasted through unless a request says (a portrait with glasses or a hand near the
    face); None: the box only."""
    mask_regions: tuple[str, ...] | None = None
    """The regions its region mask keeps unless a request says; None: every region."""


NOT_SAID = DestinationInfo()


@dataclass(frozen=True)
class GalleryIndex:
    """The operator's word on each portrait, by file name, as the index file gives it."""

    entries: dict[str, DestinationInfo]

    def info(self, name: str) -> DestinationInfo:
        """The operator's word on this portrait, or NOT_SAID."""
        return self.entries.get(name, NOT_SAID)


EMPTY = GalleryIndex({})


def read_index(directory: Path, read: Callable[[Path, int], bytes]) -> GalleryIndex:
    """The index in this directory (EMPTY if there is none), read with `read(path, max_bytes)`."""
    path = directory / INDEX_NAME
    try:
        raw = read(path, MAX_INDEX_BYTES)
    except FileNotFoundError:
        return EMPTY
    except OSError as exc:
        return _ignored(f"cannot be read: {exc.strerror or type(exc).__name__}")
    try:
        return GalleryIndex(parse_index(raw))
    except ValueError as exc:
        return _ignored(str(exc))


def parse_index(raw: bytes) -> dict[str, DestinationInfo]:
    """Entries by file name; ValueError naming the first thing that is wrong."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"is not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(document, dict):
        raise ValueError(f"must be a JSON object of file names, like {EXAMPLE}")
    return {str(name): _entry(str(name), entry) for name, entry in document.items()}


def _entry(name: str, entry: Any) -> DestinationInfo:
    if not isinstance(entry, dict):
        raise ValueError(f"{name!r} must map to an object, like {EXAMPLE}")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ValueError(f"{name!r} has unknown field(s) {unknown}; known: {', '.join(FIELDS)}")
    title, order, faces = entry.get("title"), entry.get("order"), entry.get("faces")
    if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE_CHARS):
        raise ValueError(f"{name!r}: title must be text of up to {MAX_TITLE_CHARS} characters")
    if order is not None and not _whole(order):
        raise ValueError(f"{name!r}: order must be a whole number")
    if faces is not None and (not isinstance(faces, list) or not faces or not all(_whole(f) and f >= 1 for f in faces)):
        raise ValueError(f"{name!r}: faces must be a non-empty list of face numbers from 1, like [1, 2]")
    return DestinationInfo(title, order, tuple(sorted(set(faces))) if faces is not None else None,
                           _names(name, "mask", entry.get("mask"), MASK_TYPES),
                           _names(name, "mask_regions", entry.get("mask_regions"), tuple(REGIONS)))


def _names(name: str, field: str, value: Any, known: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v in known for v in value):
        raise ValueError(f"{name!r}: {field} must be a list of {', '.join(known)}")
    return tuple(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31


def _ignored(problem: str) -> GalleryIndex:
    logger.error("%s ignored (portraits in name order, every face swappable): it %s", INDEX_NAME, problem)
    return EMPTY
