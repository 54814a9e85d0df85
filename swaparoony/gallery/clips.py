"""A moving destination: its frames, their timing, and each tracked face in every frame it appears in, prepared at
load exactly as a portrait's faces are (aligned at every pixel-boost size, masks, enhancer view)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..imaging.clip_codec import Timing
from ..imaging.face_geometry import PasteRegion, paste_back
from ..provenance.visible_label import labelled
from ..types import Frame

if TYPE_CHECKING:
    from .portraits import DestinationFace


@dataclass(frozen=True)
class Clip:
    """The frames (watermarked where the mark is on), and `faces[track][frame]`: face track+1 in that frame, or
    None where it is not in it (that frame keeps its original face)."""

    frames: tuple[Frame, ...]
    timing: Timing
    faces: tuple[tuple[DestinationFace | None, ...], ...]
    audio: bool = False

    def first_frame_with(self, face_ids: Iterable[int]) -> int:
        """The first frame any of these (1-based) faces is in: the clip's still (a contact sheet's tile, what the
        original API's JPEG shows)."""
        return min(next(i for i, face in enumerate(self.faces[face_id - 1]) if face is not None) for face_id in face_ids)

    def frames_with(self, face_id: int) -> list[int]:
        """The frames this (1-based) face is in."""
        return [i for i, face in enumerate(self.faces[face_id - 1]) if face is not None]

    def pasted(self, pastes: dict[int, list[tuple[Frame, PasteRegion]]], label: str | None) -> Iterator[Frame]:
        """Every frame, with its swapped faces pasted where it has any, and the label over each where it is on: made
        one at a time as the encoder takes them, so a request never holds a second copy of the whole clip."""
        for at in range(len(self.frames)):
            yield self.frame(at, pastes.get(at, []), label)

    def frame(self, at: int, pastes: list[tuple[Frame, PasteRegion]], label: str | None) -> Frame:
        """One frame with these faces pasted (a copy; the clip's own frames are only read)."""
        frame = self.frames[at]
        for crop, region in pastes:
            frame = paste_back(frame, crop, region)
        if label is None:
            return frame
        return labelled(frame.copy() if frame is self.frames[at] else frame, label)

    @property
    def nbytes(self) -> int:
        """What the clip holds in memory: its frames and every face's crops and masks."""
        faces = [face for track in self.faces for face in track if face is not None]
        crops = sum(aligned.crop.nbytes for face in faces for aligned in face.aligned.values())
        masks = sum(face.region.mask.nbytes + face.region.keep.nbytes for face in faces)  # one per face, all sizes
        return sum(frame.nbytes for frame in self.frames) + crops + masks
