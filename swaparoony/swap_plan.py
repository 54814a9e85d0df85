"""Which face goes where: the person's options checked against the gallery before any model call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import FaceIdOutOfRange, GalleryUnavailable, NoFaceFound
from .face_map import FacePair, describe
from .gallery.portraits import Destination, Gallery
from .imaging.clip_codec import ClipFormat
from .imaging.vision import OutputFormat
from .types import Face

STILL: Literal["still"] = "still"
"""clip_format=still: a clip destination comes back as one picture, its first swapped frame, in output_format."""
EVERY_FACE = 0
"""destination_face_id=0: the chosen upload face goes into every face of each destination."""
NO_USABLE_DESTINATION = (
    "No destination portrait has a face to swap into; the operator must add portraits with a clearly "
    "visible face to the destinations directory (see POST /destinations for why each one is skipped)."
)


@dataclass(frozen=True)
class SwapOptions:
    """What the person asked for; face ids are 1-based, counted left to right."""

    source_face_id: int = 1
    destination_face_id: int = 1
    """0 (EVERY_FACE): every face of each destination."""
    destinations: tuple[str, ...] | None = None
    output_format: OutputFormat = "jpeg"
    pixel_boost: int = 128
    """The crop size each face is swapped at: 128, 256 or 512 (1, 4 or 16 swaps per face)."""
    face_map: tuple[FacePair, ...] = ()
    """(upload face, destination face) pairs; when given, the two ids above are not used."""
    color_match: bool = False
    enhancer: str | None = None
    """A face enhancer's key (models/face_enhancer.py's ENHANCERS); None: no enhancer."""
    enhancer_blend: int = 80
    """0-100: how much of the restored face replaces the swapped one."""
    enhancer_weight: float = 0.5
    """CodeFormer's fidelity, 0-1."""
    mask: tuple[str, ...] | None = None
    """Mask types (box, occlusion, region) to paste through; None: each portrait's default (gallery.json), else box."""
    mask_regions: tuple[str, ...] | None = None
    """The face parser's regions the region mask keeps; None: every region."""
    clip_format: ClipFormat | Literal["still"] = "mp4"
    """What a clip destination comes back as: a clip (mp4, webp, gif) or STILL."""


@dataclass(frozen=True)
class Skipped:
    """A destination that was asked for but could not take the swap, and why."""

    destination_name: str
    reason: str


@dataclass(frozen=True)
class Planned:
    """A destination that takes the swap, and the (upload face, destination face) pairs it takes."""

    destination: Destination
    pairs: tuple[FacePair, ...]


def plan(gallery: Gallery, options: SwapOptions) -> tuple[list[Planned], list[Skipped]]:
    """The selected destinations that can take the swap, with their pairs, and those that cannot."""
    if not gallery.usable:
        raise GalleryUnavailable(NO_USABLE_DESTINATION)
    planned, skipped = [], []
    for destination in gallery.select(list(options.destinations) if options.destinations else None):
        pairs, reason = _pairs(destination, options)
        if reason:
            skipped.append(Skipped(destination.name, reason))
        else:
            planned.append(Planned(destination, pairs))
    if not planned:
        raise FaceIdOutOfRange(
            "No destination could take the swap: " + "; ".join(f"{s.destination_name}: {s.reason}" for s in skipped)
        )
    return planned, skipped


def sources_used(planned: list[Planned]) -> list[int]:
    """The upload faces the plan needs, in order: each is embedded once however many faces it goes into."""
    return sorted({source for item in planned for source, _ in item.pairs})


def pick_face(faces: list[Face], face_id: int, parameter: str, where: str) -> Face:
    """The face_id-th face (1-based), or an error that says how many there are."""
    if not faces:
        raise NoFaceFound(f"No face was found in {where}. Use a well-lit photo with a clearly visible, front-facing face.")
    if not 1 <= face_id <= len(faces):
        raise FaceIdOutOfRange(
            f"{parameter}={face_id} is out of range: {len(faces)} face(s) found in {where}; "
            f"use 1 to {len(faces)}, counted left to right."
        )
    return faces[face_id - 1]


def pick_sources(faces: list[Face], options: SwapOptions, wanted: list[int]) -> list[Face]:
    """The upload faces the plan uses; an error naming the face_map pair whose upload face is not there."""
    if options.face_map and faces:
        for pair in options.face_map:
            if pair[0] > len(faces):
                raise FaceIdOutOfRange(f"face_map pair {describe(pair)}: upload face {pair[0]} is out of range: "
                                       f"{len(faces)} face(s) found in the upload; use 1 to {len(faces)}.")
    return [pick_face(faces, face_id, "source_face_id", "the upload") for face_id in wanted]


def _pairs(destination: Destination, options: SwapOptions) -> tuple[tuple[FacePair, ...], str | None]:
    if destination.reason:
        return (), destination.reason
    offered = destination.offered_faces
    if options.face_map:
        for pair in options.face_map:
            reason = _unusable(destination, pair[1], offered)
            if reason:
                return (), f"face_map pair {describe(pair)}: {reason}"
        return options.face_map, None
    if options.destination_face_id == EVERY_FACE:
        if not offered:
            return (), f"none of its {len(destination.faces)} face(s) is offered by the operator"
        return tuple((options.source_face_id, face) for face in offered), None
    reason = _unusable(destination, options.destination_face_id, offered)
    return ((), reason) if reason else (((options.source_face_id, options.destination_face_id),), None)


def _unusable(destination: Destination, face_id: int, offered: list[int]) -> str | None:
    if not 1 <= face_id <= len(destination.faces):
        return f"destination_face_id={face_id} is out of range: it has {len(destination.faces)} face(s)"
    if face_id not in offered:
        return f"destination_face_id={face_id} is not offered: the operator allows face(s) {offered} of it"
    return None
