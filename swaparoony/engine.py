"""The request path: one detection and one embedding per upload, one swap per destination."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import __version__, content_credentials
from .content_credentials import Marker, Provenance, Unmarked
from .decoder_pool import DecoderPool
from .errors import FaceIdOutOfRange, GalleryUnavailable, NoFaceFound
from .face_detector import faces_from_detections, letterbox
from .face_helper import PasteRegion, align_matrix, crop_face, paste_back
from .face_recognizer import RECOGNIZER_SIZE
from .gallery import Destination, Gallery
from .gallery_editor import GalleryEditor
from .image_file import DecodeLimits
from .jpeg_splice import encode_banded
from .live_gallery import LiveGallery
from .model_set import FaceModels
from .overview import contact_sheet, numbered_faces
from .prepared_output import PreparedOutput, prepare
from .settings import Settings
from .telemetry import NoTelemetry, Telemetry, timed
from .types import DecodedImage, Face, FaceSwapRequest, Frame
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

    def __init__(self, models: FaceModels, settings: Settings, decoder: DecoderPool,
                 telemetry: Telemetry | None = None, marker: Marker | None = None) -> None:
        self.models = models
        self.settings = settings
        self.decoder = decoder
        self.telemetry = telemetry or NoTelemetry()
        self.marker = marker or Unmarked()
        self.live = LiveGallery(settings.destinations_dir, models, lambda data: self.decode(data, self.destination_limits),
                                settings.max_upload_bytes, self._prepare)
        self.upload_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels, UPLOAD_LONG_SIDE)
        self.destination_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels)
        self._decoding = asyncio.Semaphore(settings.decode_processes)  # waiters queue here, not in threads
        self.editor = GalleryEditor(self.live, self._count_faces, settings.max_upload_bytes)

    @classmethod
    async def start(cls, models: FaceModels, settings: Settings, telemetry: Telemetry | None = None) -> SwapEngine:
        """Load the signing identity, start the decode processes, analyse the destinations (the only detection they
        ever get), return a ready engine."""
        marker = await asyncio.to_thread(content_credentials.from_settings, settings, __version__)
        decoder = await asyncio.to_thread(DecoderPool, settings.decode_processes, settings.decode_timeout_s,
                                          settings.decode_memory_bytes)
        engine = cls(models, settings, decoder, telemetry, marker)
        try:
            await engine.live.reload()
        except BaseException:
            decoder.close()
            raise
        return engine

    @property
    def gallery(self) -> Gallery:
        """The gallery as it is now (see live_gallery.py)."""
        return self.live.view.gallery

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
        (data,) = await self._encoded([overview], output_format)
        (marked,) = await self._marked([(data, Provenance(FACES))], MEDIA_TYPES[output_format])
        return EncodedPicture(marked, MEDIA_TYPES[output_format]), len(faces)

    async def swap(self, upload: bytes, options: SwapOptions) -> SwapOutcome:
        """Swap the chosen upload face into the chosen face of each selected destination."""
        view = self.live.view  # read once: a reload during this request does not mix two galleries
        faces, results, skipped = await self._swapped(view.gallery, upload, options)
        index = options.destination_face_id - 1
        placed = [(view.outputs[d.name], crop, d.faces[index].region) for d, crop in results]
        if options.output_format == "jpeg":
            encoded = await self._spliced_jpegs(placed)
        else:
            encoded = await self._encoded(await self._composed(placed), options.output_format)
        media_type = MEDIA_TYPES[options.output_format]
        marked = await self._marked([(data, Provenance(SWAPPED, view.outputs[d.name].parent)) for (d, _), data
                                     in zip(results, encoded)], media_type)
        swapped = [SwappedImage(d.name, data, media_type, *d.size) for (d, _), data in zip(results, marked)]
        return SwapOutcome(faces, swapped, skipped)

    async def swap_sheet(self, upload: bytes, options: SwapOptions) -> EncodedPicture:
        """The swap into every selected destination as one contact sheet, skipped destinations as grey tiles."""
        view = self.live.view
        _, results, skipped = await self._swapped(view.gallery, upload, options)
        index = options.destination_face_id - 1
        placed = [(view.outputs[d.name], crop, d.faces[index].region) for d, crop in results]
        frames = await self._composed(placed, label=False)
        tiles: dict[str, Frame | str] = {d.name: frame for (d, _), frame in zip(results, frames)}
        tiles |= {s.destination_name: s.reason for s in skipped}
        ordered = [(name, tiles[name]) for name in view.gallery.destinations if name in tiles]
        sheet = await asyncio.to_thread(contact_sheet, ordered)
        if self.settings.visible_label:
            sheet = labelled(sheet, self.settings.visible_label)
        (data,) = await self._encoded([sheet], options.output_format)
        media_type = MEDIA_TYPES[options.output_format]
        (marked,) = await self._marked([(data, Provenance(SHEET))], media_type)
        return EncodedPicture(marked, media_type)

    async def _swapped(self, gallery: Gallery, upload: bytes,
                       options: SwapOptions) -> tuple[int, list[tuple[Destination, Frame]], list[Skipped]]:
        """Faces found in the upload, each target destination with its swapped 128x128 crop, and the skipped ones."""
        targets, skipped = _targets(gallery, options)
        frame = (await self._decode_upload(upload)).frame
        faces = await self._detect(frame)
        source = pick_face(faces, options.source_face_id, "source_face_id", "the upload")
        crop = crop_face(frame, align_matrix(source.landmarks, RECOGNIZER_SIZE), RECOGNIZER_SIZE)
        del frame
        face_index = options.destination_face_id - 1
        with timed(self.telemetry, "swap"):  # embedding and swapping in one model call: the latent never comes back
            (swapped,) = await self.models.swap_faces([FaceSwapRequest(crop, [d.faces[face_index].crop for d in targets])])
        return len(faces), list(zip(targets, swapped)), skipped

    async def _count_faces(self, portrait: bytes) -> int:
        """Faces in a portrait an operator is adding, decoded as a destination is."""
        frame = (await self.decode(portrait, self.destination_limits)).frame
        canvas, scale = await asyncio.to_thread(letterbox, frame)
        (detections,) = await self.models.detect([canvas])
        return len(faces_from_detections(detections, scale))

    def _prepare(self, destination: Destination) -> PreparedOutput:
        """A usable destination's JPEG in bands, labelled base and parent ingredient, made once per file."""
        return prepare(destination, self.marker, self.settings.jpeg_quality, self.settings.visible_label)

    async def _decode_upload(self, upload: bytes) -> DecodedImage:
        self.telemetry.upload(len(upload))
        with timed(self.telemetry, "decode"):
            return await self.decode(upload, self.upload_limits)

    async def _detect(self, frame: Frame) -> list[Face]:
        with timed(self.telemetry, "detect"):
            canvas, scale = await asyncio.to_thread(letterbox, frame)
            (detections,) = await self.models.detect([canvas])
            faces = faces_from_detections(detections, scale)
        self.telemetry.faces_found(len(faces))
        return faces

    async def _spliced_jpegs(self, placed: list[tuple[PreparedOutput, Frame, PasteRegion]]) -> list[bytes]:
        """JPEGs re-encoding only the rows each face changed, spliced into the destination's prepared JPEG."""
        with timed(self.telemetry, "paste"):
            strips = await asyncio.gather(*(asyncio.to_thread(output.strip, crop, region) for output, crop, region in placed))
        with timed(self.telemetry, "encode"):
            return list(await asyncio.gather(*(
                asyncio.to_thread(output.jpeg.splice, strip[1], strip[0]) if strip is not None
                else asyncio.to_thread(self._encode_full, output, crop, region)
                for (output, crop, region), strip in zip(placed, strips)
            )))

    def _encode_full(self, output: PreparedOutput, crop: Frame, region: PasteRegion) -> bytes:
        return encode_banded(output.full(crop, region), self.settings.jpeg_quality)

    async def _composed(self, placed: list[tuple[PreparedOutput, Frame, PasteRegion]], label: bool = True) -> list[Frame]:
        """Whole result frames, labelled where the label is on and asked for (a contact sheet labels itself)."""
        def compose(output: PreparedOutput, crop: Frame, region: PasteRegion) -> Frame:
            return output.full(crop, region) if label else paste_back(output.frame, crop, region)

        with timed(self.telemetry, "paste"):
            return list(await asyncio.gather(*(asyncio.to_thread(compose, *item) for item in placed)))

    async def _encoded(self, frames: list[Frame], output_format: OutputFormat) -> list[bytes]:
        with timed(self.telemetry, "encode"):
            return list(await asyncio.gather(*(
                asyncio.to_thread(encode_image, frame, output_format, self.settings.jpeg_quality) for frame in frames
            )))

    async def _marked(self, pictures: list[tuple[bytes, Provenance]], media_type: str) -> list[bytes]:
        """Each picture with its content credentials, in parallel threads."""
        with timed(self.telemetry, "mark"):
            return list(await asyncio.gather(*(
                asyncio.to_thread(self.marker.mark, data, media_type, provenance) for data, provenance in pictures
            )))


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


def _targets(gallery: Gallery, options: SwapOptions) -> tuple[list[Destination], list[Skipped]]:
    """The selected destinations that can take the swap and those that cannot, checked before any model call."""
    if not gallery.usable:
        raise GalleryUnavailable(NO_USABLE_DESTINATION)
    targets, skipped = [], []
    for destination in gallery.select(list(options.destinations) if options.destinations else None):
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


def _unusable(destination: Destination, face_id: int) -> str | None:
    if destination.reason:
        return destination.reason
    if not 1 <= face_id <= len(destination.faces):
        return f"destination_face_id={face_id} is out of range: it has {len(destination.faces)} face(s)"
    allowed = destination.info.faces
    if allowed is not None and face_id not in allowed:
        return f"destination_face_id={face_id} is not offered: the operator allows face(s) {list(allowed)} of it"
    return None
