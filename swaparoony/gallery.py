"""The destination portraits: decoded, detected and aligned once at start-up, then only read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SwaparoonyError, UnknownDestination
from .face_detector import faces_from_detections, letterbox
from .face_helper import PasteRegion, align_matrix, crop_face, feather_mask, paste_region
from .face_swapper import SWAPPER_SIZE
from .model_set import FaceModels
from .types import Face, Frame
from .vision import decode_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CROP_MASK = feather_mask(SWAPPER_SIZE, margin=10, sigma=5.0)
UNREADABLE: Frame = np.zeros((0, 0, 3), dtype=np.uint8)


@dataclass(frozen=True)
class DestinationFace:
    """A face in a destination, with its aligned swapper crop and paste region already computed."""

    face: Face
    crop: Frame
    region: PasteRegion


@dataclass(frozen=True)
class Destination:
    """One portrait; an unusable one keeps its name and a reason instead of faces."""

    name: str
    frame: Frame
    faces: tuple[DestinationFace, ...]
    reason: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """Width and height; (0, 0) for a file that could not be read."""
        return (self.frame.shape[1], self.frame.shape[0])


class Gallery:
    """Destinations by file name, in name order."""

    def __init__(self, destinations: list[Destination]) -> None:
        self.destinations = {destination.name: destination for destination in destinations}

    @classmethod
    async def load(cls, directory: Path, models: FaceModels, max_pixels: int) -> Gallery:
        """Decode every image in directory and detect all their faces in one batched call."""
        paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if directory.is_dir() else []
        if not paths:
            logger.warning("no destination images in %s", directory.resolve())
        frames: dict[str, Frame] = {}
        broken: list[Destination] = []
        for path in paths:
            try:
                frames[path.name] = decode_image(path.read_bytes(), max_bytes=2**40, max_pixels=max_pixels)
            except (SwaparoonyError, OSError) as exc:
                logger.warning("destination %s cannot be read: %s", path.name, exc)
                broken.append(Destination(path.name, UNREADABLE, (), reason=f"cannot be read: {exc}"))
        canvases = [letterbox(frame) for frame in frames.values()]
        detections = await models.detect([canvas for canvas, _ in canvases]) if canvases else []
        loaded = [
            _destination(name, frame, faces_from_detections(found, scale))
            for (name, frame), (_, scale), found in zip(frames.items(), canvases, detections)
        ]
        gallery = cls(sorted(loaded + broken, key=lambda d: d.name))
        for destination in gallery.destinations.values():
            logger.info("destination %s: %d face(s)%s", destination.name, len(destination.faces),
                        f" ({destination.reason})" if destination.reason else "")
        return gallery

    def select(self, names: list[str] | None) -> list[Destination]:
        """The named destinations in the order given, or all of them; unknown names are an error."""
        if not names:
            return list(self.destinations.values())
        unknown = [name for name in names if name not in self.destinations]
        if unknown:
            raise UnknownDestination(
                f"unknown destination(s) {unknown}; known: {sorted(self.destinations)} (see POST /destinations)"
            )
        return [self.destinations[name] for name in dict.fromkeys(names)]


def _destination(name: str, frame: Frame, faces: list[Face]) -> Destination:
    if not faces:
        return Destination(name, frame, (), reason="no face found")
    prepared = []
    for face in faces:
        matrix = align_matrix(face.landmarks, SWAPPER_SIZE)
        prepared.append(DestinationFace(face, crop_face(frame, matrix, SWAPPER_SIZE), paste_region(frame.shape, matrix, CROP_MASK)))
    return Destination(name, frame, tuple(prepared))
