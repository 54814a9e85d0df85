"""What start-up prepares once per destination so that a result costs little: the frame results are pasted
into (with the visible label if it is on), that frame's JPEG in bands, and its parent ingredient."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .content_credentials import Marker, Parent
from .face_helper import PasteRegion, paste_back
from .gallery import Destination
from .jpeg_splice import SplicedJpeg
from .types import Frame
from .visible_label import labelled, top_row


@dataclass(frozen=True)
class PreparedOutput:
    """One destination, ready for results."""

    frame: Frame
    base: Frame
    """The frame as every result shows it outside the face: labelled when the label is on."""
    jpeg: SplicedJpeg
    parent: Parent | None
    label: str | None

    def strip(self, crop: Frame, region: PasteRegion) -> tuple[int, Frame] | None:
        """The bands of rows the pasted face changes, pasted, and the row they start at; None where they reach the
        label, which is drawn over the face (then the whole result is composed and encoded)."""
        top, bottom = self.jpeg.rows(region.y0, region.y1)
        if self.label is not None and bottom > top_row(self.frame.shape, self.label):
            return None
        shifted = dataclasses.replace(region, y0=region.y0 - top, y1=region.y1 - top)
        return top, paste_back(self.base[top:bottom], crop, shifted)

    def full(self, crop: Frame, region: PasteRegion) -> Frame:
        """The whole result: the face pasted into the destination, then the label (if on) drawn over it."""
        frame = paste_back(self.frame, crop, region)
        return labelled(frame, self.label) if self.label is not None else frame


def prepare(destination: Destination, marker: Marker, jpeg_quality: int, label: str | None) -> PreparedOutput:
    """Encode the destination once (labelled if asked) and read it once as a parent ingredient."""
    base = labelled(destination.frame.copy(), label) if label else destination.frame
    return PreparedOutput(
        frame=destination.frame, base=base, jpeg=SplicedJpeg.encode(base, jpeg_quality),
        parent=marker.parent(destination.name, destination.file, destination.media_type), label=label,
    )
