"""What start-up prepares once per destination so that a result costs little: the frame results are pasted
into (with the visible label if it is on), that frame's JPEG in bands, and its parent ingredient."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..imaging.face_geometry import PasteRegion, paste_back
from ..imaging.jpeg_splice import Area, SplicedJpeg
from ..provenance.content_credentials import Marker, Parent
from ..provenance.visible_label import labelled, top_row
from ..types import Frame
from .portraits import Destination

Paste = tuple[Frame, PasteRegion]
"""A swapped crop and where it goes."""


@dataclass(frozen=True)
class PreparedOutput:
    """One destination, ready for results."""

    frame: Frame
    base: Frame
    """The frame as every result shows it outside the face: labelled when the label is on."""
    jpeg: SplicedJpeg
    parent: Parent | None
    label: str | None

    def patch(self, pastes: list[Paste]) -> tuple[Area, Frame] | None:
        """The tiles the pasted faces change, pasted, and where they are; None where they reach the label, which
        is drawn over the faces (then the whole result is composed and encoded)."""
        area = self.jpeg.area(min(r.x0 for _, r in pastes), min(r.y0 for _, r in pastes),
                              max(r.x1 for _, r in pastes), max(r.y1 for _, r in pastes))
        if self.label is not None and area.bottom > top_row(self.frame.shape, self.label):
            return None
        patch = self.base[area.top : area.bottom, area.left : area.right]
        for crop, region in pastes:
            moved = dataclasses.replace(region, x0=region.x0 - area.left, x1=region.x1 - area.left,
                                        y0=region.y0 - area.top, y1=region.y1 - area.top)
            patch = paste_back(patch, crop, moved)
        return area, patch

    def full(self, pastes: list[Paste], label: bool = True) -> Frame:
        """The whole result: the faces pasted into the destination, then the label (if on and asked for) over them."""
        frame = self.frame
        for crop, region in pastes:
            frame = paste_back(frame, crop, region)
        return labelled(frame, self.label) if label and self.label is not None else frame


def prepare(destination: Destination, marker: Marker, jpeg_quality: int, label: str | None) -> PreparedOutput:
    """Encode the destination once (labelled if asked) and read it once as a parent ingredient."""
    base = labelled(destination.frame.copy(), label) if label else destination.frame
    return PreparedOutput(
        frame=destination.frame, base=base, jpeg=SplicedJpeg.encode(base, jpeg_quality),
        parent=marker.parent(destination.name, destination.file, destination.media_type), label=label,
    )
