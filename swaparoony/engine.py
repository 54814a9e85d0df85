"""The request path: one detection and one embedding per upload, one swap per destination."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import __version__, content_credentials
from .content_credentials import Marker, Parent, Provenance, Unmarked
from .decoder_pool import DecoderPool
from .errors import FaceIdOutOfRange, GalleryUnavailable, NoFaceFound
from .face_detector import faces_from_detections, letterbox
from .face_helper import align_matrix, crop_face, paste_back
from .face_recognizer import RECOGNIZER_SIZE
from .gallery import Destination, Gallery
from .image_file import DecodeLimits
from .model_set import FaceModels
from .overview import contact_sheet, numbered_faces
from .settings import Settings
from .telemetry import NoTelemetry, Telemetry, timed
from .types import DecodedImage, Face, Frame, SwapItem
from .visible_label import labelled
from .vision import MEDIA_TYPES, OutputFormat, encode_image

UPLOAD_LONG_SIDE = 1920
"""Uploads are decoded at the smallest whole-factor size that keeps this many pixels on the long side.
Faces are found on a 640-pixel canvas and embedded from a 112-pixel crop, so a face a tenth of the
photo wide still has 190 pixels here; a 12 MP phone JPEG decodes at half size, about 3x faster."""
SWAPPED = "A face from an uploaded photo swapped into this portrait by an AI face-swap model (inswapper)."
SHEET = "Faces from an uploaded photo swapped into portraits by an AI face-swap model (inswapper), as a contact sheet."
FACES = "A photo with the faces an AI face detector found boxed and numbered."
NO_USABLE_DESTINATION = (
    "No destination portrait has a face to swap into; the operator must add portraits with a clearly "
    "visible face to the destinations directory (see POST /destinations for why each one is skipped)."
)


@dataclass(frozen=True)
class SwapOptions:
    """What the person asked for; face ids are 1-based, counted left to right."""

    source_face_id: int = 1
    destination_face_id: int = 1
    destinations: tuple[str, ...] | None = None
    output_format: OutputFormat = "jpeg"


@dataclass(frozen=True)
class EncodedPicture:
    """An encoded picture and its media type."""

    data: bytes
    media_type: str


@dataclass(frozen=True)
class SwappedImage:
    """One encoded result."""

    destination_name: str
    data: bytes
    media_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Skipped:
    """A destination that was asked for but could not take the swap, and why."""

    destination_name: str
    reason: str


@dataclass(frozen=True)
class SwapOutcome:
    """Everything a swap request produced."""

    faces_detected_in_source: int
    swapped: list[SwappedImage]
    skipped: list[Skipped]


class SwapEngine:
    """Runs swaps against a gallery prepared once; CPU stages run in threads and decode processes."""

    def __init__(self, models: FaceModels, gallery: Gallery, settings: Settings, decoder: DecoderPool,
                 telemetry: Telemetry | None = None, marker: Marker | None = None) -> None:
        self.models = models
        self.gallery = gallery
        self.settings = settings
        self.decoder = decoder
        self.telemetry = telemetry or NoTelemetry()
        self.marker = marker or Unmarked()
        self.parents: dict[str, Parent | None] = {}
        self.upload_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels, UPLOAD_LONG_SIDE)
        self.destination_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels)
        self._decoding = asyncio.Semaphore(settings.decode_processes)  # waiters queue here, not in threads

    @classmethod
    async def start(cls, models: FaceModels, settings: Settings, telemetry: Telemetry | None = None) -> SwapEngine:
        """Load the signing identity, start the decode processes, analyse the destinations (the only detection they
        ever get), return a ready engine."""
        marker = await asyncio.to_thread(content_credentials.from_settings, settings, __version__)
        decoder = await asyncio.to_thread(DecoderPool, settings.decode_processes, settings.decode_timeout_s,
                                          settings.decode_memory_bytes)
        engine = cls(models, Gallery([]), settings, decoder, telemetry, marker)
        try:
            engine.gallery = await Gallery.load(
                settings.destinations_dir, models, lambda data: engine.decode(data, engine.destination_limits),
                settings.max_upload_bytes,
            )
            engine.parents = await asyncio.to_thread(engine._parents)
        except BaseException:
            decoder.close()
            raise
        return engine

    def close(self) -> None:
        """Stop the decode processes."""
        self.decoder.close()

    async def decode(self, data: bytes, limits: DecodeLimits) -> DecodedImage:
        """Decode in a worker process, waiting here (not in a thread) while all of them are busy."""
        async with self._decoding:
            return await asyncio.to_thread(self.decoder.decode, data, limits)

    async def find_faces(self, upload: bytes) -> list[Face]:
        """Faces in the upload, left to right, in the upload's own pixels."""
        decoded = await self._decode_upload(upload)
        return [face.scaled(decoded.scale) for face in await self._detect(decoded.frame)]

    async def faces_picture(self, upload: bytes, output_format: OutputFormat) -> tuple[EncodedPicture, int]:
        """The upload with its faces boxed and numbered left to right, and how many there are."""
        frame = (await self._decode_upload(upload)).frame
        faces = await self._detect(frame)
        overview = await asyncio.to_thread(numbered_faces, frame, faces)
        (picture,) = await self._pictures([(overview, Provenance(FACES))], output_format, label=False)
        return picture, len(faces)

    async def swap(self, upload: bytes, options: SwapOptions) -> SwapOutcome:
        """Swap the chosen upload face into the chosen face of each selected destination."""
        faces, results, skipped = await self._swapped(upload, options)
        made = [(frame, Provenance(SWAPPED, self.parents.get(d.name))) for d, frame in results]
        encoded = await self._pictures(made, options.output_format, label=True)
        swapped = [SwappedImage(d.name, picture.data, picture.media_type, *d.size) for (d, _), picture in zip(results, encoded)]
        return SwapOutcome(faces, swapped, skipped)

    async def swap_sheet(self, upload: bytes, options: SwapOptions) -> EncodedPicture:
        """The swap into every selected destination as one contact sheet, skipped destinations as grey tiles."""
        _, results, skipped = await self._swapped(upload, options)
        tiles: dict[str, Frame | str] = {d.name: frame for d, frame in results}
        tiles |= {s.destination_name: s.reason for s in skipped}
        ordered = [(name, tiles[name]) for name in self.gallery.destinations if name in tiles]
        sheet = await asyncio.to_thread(contact_sheet, ordered)
        (picture,) = await self._pictures([(sheet, Provenance(SHEET))], options.output_format, label=True)
        return picture

    async def _swapped(self, upload: bytes, options: SwapOptions) -> tuple[int, list[tuple[Destination, Frame]], list[Skipped]]:
        """Faces found in the upload, each target destination with the face pasted in, and the skipped ones."""
        targets, skipped = self._targets(options)
        frame = (await self._decode_upload(upload)).frame
        faces = await self._detect(frame)
        source = pick_face(faces, options.source_face_id, "source_face_id", "the upload")
        crop = crop_face(frame, align_matrix(source.landmarks, RECOGNIZER_SIZE), RECOGNIZER_SIZE)
        del frame
        with timed(self.telemetry, "embed"):
            (latent,) = await self.models.embed([crop])
        face_index = options.destination_face_id - 1
        with timed(self.telemetry, "swap"):
            swapped_crops = await self.models.swap([SwapItem(d.faces[face_index].crop, latent) for d in targets])
        with timed(self.telemetry, "paste"):
            pasted = await asyncio.gather(*(
                asyncio.to_thread(paste_back, d.frame, swapped, d.faces[face_index].region)
                for d, swapped in zip(targets, swapped_crops)
            ))
        return len(faces), list(zip(targets, pasted)), skipped

    def _parents(self) -> dict[str, Parent | None]:
        """Each usable destination prepared once as the parent its results' credentials name."""
        return {d.name: self.marker.parent(d.name, d.file, d.media_type) for d in self.gallery.destinations.values() if d.faces}

    async def _decode_upload(self, upload: bytes) -> DecodedImage:
        self.telemetry.upload(len(upload))
        with timed(self.telemetry, "decode"):
            return await self.decode(upload, self.upload_limits)

    def _targets(self, options: SwapOptions) -> tuple[list[Destination], list[Skipped]]:
        """The selected destinations that can take the swap and those that cannot, checked before any model call."""
        if not self.gallery.usable:
            raise GalleryUnavailable(NO_USABLE_DESTINATION)
        targets, skipped = [], []
        for destination in self.gallery.select(list(options.destinations) if options.destinations else None):
            reason = _unusable(destination, options.destination_face_id)
            if reason:
                skipped.append(Skipped(destination.name, reason))
            else:
                targets.append(destination)
        if not targets:
            raise FaceIdOutOfRange(
                "No destination could take the swap: " + "; ".join(f"{s.destination_name}: {s.reason}" for s in skipped)
            )
        return targets, skipped

    async def _detect(self, frame: Frame) -> list[Face]:
        with timed(self.telemetry, "detect"):
            canvas, scale = await asyncio.to_thread(letterbox, frame)
            (detections,) = await self.models.detect([canvas])
            faces = faces_from_detections(detections, scale)
        self.telemetry.faces_found(len(faces))
        return faces

    async def _pictures(self, made: list[tuple[Frame, Provenance]], output_format: OutputFormat,
                        label: bool) -> list[EncodedPicture]:
        """Encode each frame (labelled where asked and configured), then mark it, each stage in parallel threads."""
        media_type = MEDIA_TYPES[output_format]
        text = self.settings.visible_label if label else None
        with timed(self.telemetry, "encode"):
            encoded = await asyncio.gather(*(asyncio.to_thread(self._encode, frame, output_format, text) for frame, _ in made))
        with timed(self.telemetry, "mark"):
            marked = await asyncio.gather(*(
                asyncio.to_thread(self.marker.mark, data, media_type, provenance)
                for data, (_, provenance) in zip(encoded, made)
            ))
        return [EncodedPicture(data, media_type) for data in marked]

    def _encode(self, frame: Frame, output_format: OutputFormat, label: str | None) -> bytes:
        return encode_image(labelled(frame, label) if label else frame, output_format, self.settings.jpeg_quality)


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


def _unusable(destination: Destination, face_id: int) -> str | None:
    if destination.reason:
        return destination.reason
    if not 1 <= face_id <= len(destination.faces):
        return f"destination_face_id={face_id} is out of range: it has {len(destination.faces)} face(s)"
    return None
