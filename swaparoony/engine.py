"""The request path: one detection per upload, then one model call that embeds the chosen faces and swaps them
into every selected destination face (a big request: one call per chunk of swaps, each admitted by the worker's
work budget, so cancelling it stops its model work)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import __version__
from .errors import ServiceNotReady, UndecodableImage, UploadTooLarge
from .gallery.bounds import GalleryBounds
from .gallery.editor import GalleryEditor
from .face_map import FacePair
from .gallery.live import GalleryView, LiveGallery
from .gallery.portraits import HEAD, Destination, DestinationFace, Gallery, measure_clip
from .gallery.prepared_output import Paste, PreparedOutput, prepare
from .imaging.decode_queue import DecodeQueue
from .imaging.clip_codec import CLIP_MEDIA_TYPES, ClipBounds, ClipPastBound, ClipRefused, encode_clip, moves
from .imaging.decoder_pool import DecoderPool
from .imaging.face_geometry import align_matrix, crop_face
from .imaging.face_masks import MaskChoice
from .imaging.image_file import DecodeLimits
from .imaging.jpeg_splice import encode_banded
from .imaging.overview import contact_sheet, numbered_faces
from .imaging.vision import MEDIA_TYPES, OutputFormat, encode_image
from .models import rivagan
from .models.arcface import RECOGNIZER_SIZE
from .models.model_calls import Loaded, ModelCalls
from .models.scrfd import ROLE as DETECTOR, faces_from_detections, letterbox
from .offered_models import OfferedModels
from .provenance import content_credentials
from .provenance.content_credentials import Marker, Provenance, Unmarked
from .provenance.visible_label import labelled
from .settings import Settings
from .swap_chunks import CHUNK_SWAPS, chunked, joined, swaps
from .swap_cost import SwapCost, refuse_past
from .progress import Progress
from .swap_plan import NO_USABLE_DESTINATION, STILL, Planned, Skipped, SwapOptions, pick_sources, plan, sources_used
from .telemetry import NoTelemetry, Telemetry, timed
from .types import DecodedImage, Enhancement, Face, FaceSwapRequest, FaceSwapResult, Frame
from .work_budget import WorkBudget

logger = logging.getLogger(__name__)
UPLOAD_LONG_SIDE = 1920
"""Uploads are decoded at the smallest whole-factor size that keeps this many pixels on the long side.
Faces are found on a 640-pixel canvas and embedded from a 112-pixel crop, so a face a tenth of the
photo wide still has 190 pixels here; a 12 MP phone JPEG decodes at half size, about 3x faster."""
SWAPPED = "A face from an uploaded photo swapped into this portrait by an AI face-swap model (inswapper)."
SWAPPED_CLIP = "A face from an uploaded photo swapped into every frame of this clip by an AI face-swap model (inswapper)."
SHEET = "Faces from an uploaded photo swapped into portraits by an AI face-swap model (inswapper), as a contact sheet."
FACES = "A photo with the faces an AI face detector found boxed and numbered."
Target = tuple[int, int, "FacePair", DestinationFace]
"""(planned destination, frame, (upload face, destination face), the destination face in that frame)."""
__all__ = ["NO_USABLE_DESTINATION", "EncodedPicture", "PlacedFace", "Skipped", "SwapEngine", "SwapOptions",
           "SwapOutcome", "SwappedImage"]


@dataclass(frozen=True)
class PlacedFace:
    """One face swapped into a result, and how well its identity came through (cosine similarity of ArcFace
    embeddings, the result's face re-embedded at the destination face's landmarks)."""

    source_face_id: int
    destination_face_id: int
    identity_similarity: float


@dataclass(frozen=True)
class EncodedPicture:
    """An encoded picture and its media type."""

    data: bytes
    media_type: str


@dataclass(frozen=True)
class SwappedImage:
    """One encoded result: a picture, or a clip (frames > 1 and its length in seconds)."""

    destination_name: str
    data: bytes
    media_type: str
    width: int
    height: int
    faces: tuple[PlacedFace, ...] = ()
    frames: int = 1
    duration_s: float | None = None

    @property
    def identity_similarity(self) -> float | None:
        """The lowest of its faces' similarities: the one a person would notice first."""
        return min((face.identity_similarity for face in self.faces), default=None)

    def described(self) -> dict[str, Any]:
        """What /swap and the ZIP's results.json say about it besides its name and bytes."""
        return {"media_type": self.media_type, "width": self.width, "height": self.height,
                "identity_similarity": self.identity_similarity, "faces": [dataclasses.asdict(f) for f in self.faces],
                "frames": self.frames, "duration_s": self.duration_s}


@dataclass(frozen=True)
class Swapped:
    """One planned destination after the model call: its faces ready to paste by frame, and what each one is."""

    destination: Destination
    pastes: dict[int, list[Paste]]
    """Frame -> the faces pasted into it: a portrait's frame 0; a clip's every frame a face is in, or, for its
    still, the first of them."""
    faces: tuple[PlacedFace, ...]
    moving: bool = False
    """A clip swapped in every frame, not its still."""

    @property
    def still(self) -> tuple[int, list[Paste]]:
        """The one frame of a picture (a portrait, or a clip's still), and its pastes."""
        ((frame, pastes),) = self.pastes.items()
        return frame, pastes


@dataclass(frozen=True)
class SwapOutcome:
    """Everything a swap request produced."""

    faces_detected_in_source: int
    swapped: list[SwappedImage]
    skipped: list[Skipped]


class SwapEngine:
    """Runs swaps against a gallery prepared once; CPU stages run in threads and decode processes."""

    def __init__(self, models: ModelCalls, settings: Settings, decoder: DecoderPool,
                 telemetry: Telemetry | None = None, marker: Marker | None = None, loaded: Loaded | None = None) -> None:
        self.models = models
        self.offered = OfferedModels.of(loaded or {})
        self.watermarking = bool((loaded or {}).get(rivagan.ROLE))
        """Whether the model service loaded the watermark encoder (SWAPAROONY_WATERMARK=on): the gallery's frames are
        marked as they load, a contact sheet as it is made."""
        self.settings = settings
        self.decoder = decoder
        self.telemetry = telemetry or NoTelemetry()
        self.marker = marker or Unmarked()
        self.live = LiveGallery(settings.destinations_dir, models, lambda data: self.decode(data, self.destination_limits),
                                settings.max_upload_bytes, self._prepare,
                                GalleryBounds(settings.max_destinations, settings.max_gallery_pixels,
                                              ClipBounds(settings.max_clip_frames, settings.max_clip_seconds,
                                                         settings.max_clip_frame_pixels)), loaded or {})
        self.upload_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels, UPLOAD_LONG_SIDE)
        self.destination_limits = DecodeLimits(settings.max_upload_bytes, settings.max_pixels)
        self._decoding = DecodeQueue(settings.decode_processes)  # waiters queue here, in turn by client, not in threads
        self.editor = GalleryEditor(self.live, self._measure, settings.max_upload_bytes)
        self.work = WorkBudget(settings.max_active_swaps)
        self.chunk_swaps = min(CHUNK_SWAPS, settings.max_active_swaps)

    @classmethod
    async def start(cls, models: ModelCalls, settings: Settings, telemetry: Telemetry | None = None) -> SwapEngine:
        """Load the signing identity, start the decode processes, analyse the destinations (the only detection, parse
        and occlusion mask they ever get), return a ready engine."""
        marker = await asyncio.to_thread(content_credentials.from_settings, settings, __version__)
        if settings.watermark == "off":
            logger.warning("the watermark is off: a re-saved picture keeps no mark that it is an AI face swap (see the "
                           "README)")
        loaded = await models.loaded()
        decoder = await asyncio.to_thread(DecoderPool, settings.decode_processes, settings.decode_timeout_s,
                                          settings.decode_memory_bytes)
        engine = cls(models, settings, decoder, telemetry, marker, loaded)
        try:
            await engine.live.reload()
        except BaseException:
            decoder.close()
            raise
        return engine

    @property
    def gallery(self) -> Gallery:
        """The gallery as it is now (see gallery/live.py)."""
        return self.live.view.gallery

    def close(self) -> None:
        """Stop the decode processes."""
        self.decoder.close()

    async def decode(self, data: bytes, limits: DecodeLimits) -> DecodedImage:
        """Decode in a worker process, waiting here (not in a thread) while all of them are busy."""
        async with self._decoding.slot():
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
        (marked,) = await self._marked([(data, MEDIA_TYPES[output_format], Provenance(FACES))])
        return EncodedPicture(marked, MEDIA_TYPES[output_format]), len(faces)

    async def swap(self, upload: bytes, options: SwapOptions, progress: Progress | None = None) -> SwapOutcome:
        """Swap the chosen upload face(s) into the chosen face(s) of each selected destination: a clip comes back as
        a clip in options.clip_format (or its first swapped frame as a picture, with clip_format=still)."""
        progress = progress or Progress()
        view = self.live.view  # read once: a reload during this request does not mix two galleries
        faces, results, skipped = await self._swapped(view.gallery, upload, options, progress)
        progress.encoding()
        pictures = [r for r in results if not r.moving]
        made = dict(zip([r.destination.name for r in pictures], await self._pictures(view, pictures, options)))
        for result in results:  # one clip at a time: each holds its encoder's frames while it is made
            if result.moving:
                made[result.destination.name] = await self._clip(result, options)
        marked = await self._marked([(made[r.destination.name].data, made[r.destination.name].media_type,
                                      Provenance(SWAPPED_CLIP if r.moving else SWAPPED,
                                                 view.outputs[r.destination.name].parent, self.watermarking))
                                     for r in results])
        return SwapOutcome(faces, [dataclasses.replace(made[r.destination.name], data=data, faces=r.faces)
                                   for r, data in zip(results, marked)], skipped)

    async def swap_sheet(self, upload: bytes, options: SwapOptions,
                         progress: Progress | None = None) -> tuple[EncodedPicture, float | None]:
        """The swap into every selected destination as one contact sheet (a clip as its first swapped frame),
        skipped destinations as grey tiles, and the lowest identity similarity on it."""
        view = self.live.view
        still = dataclasses.replace(options, clip_format=STILL)
        progress = progress or Progress()
        _, results, skipped = await self._swapped(view.gallery, upload, still, progress)
        progress.encoding()
        frames = await self._composed(view, results, label=False)
        tiles: dict[str, Frame | str] = {r.destination.name: frame for r, frame in zip(results, frames)}
        tiles |= {s.destination_name: s.reason for s in skipped}
        ordered = [(name, tiles[name]) for name in view.gallery.destinations if name in tiles]
        sheet = await asyncio.to_thread(contact_sheet, ordered)
        if self.settings.visible_label:
            sheet = labelled(sheet, self.settings.visible_label)
        if self.watermarking:  # a new picture: its tiles' marks are too small in it to be read
            with timed(self.telemetry, "watermark"):
                (sheet,) = await rivagan.watermarked([sheet], self.models)
        (data,) = await self._encoded([sheet], options.output_format)
        media_type = MEDIA_TYPES[options.output_format]
        (marked,) = await self._marked([(data, media_type, Provenance(SHEET, watermarked=self.watermarking))])
        lowest = min((face.identity_similarity for r in results for face in r.faces), default=None)
        return EncodedPicture(marked, media_type), lowest

    async def _swapped(self, gallery: Gallery, upload: bytes, options: SwapOptions,
                       progress: Progress) -> tuple[int, list[Swapped], list[Skipped]]:
        """Faces found in the upload, each planned destination with its swapped faces, and the skipped ones."""
        self.offered.check(options)
        planned, skipped = plan(gallery, options)
        moving = options.clip_format != STILL
        refuse_past(SwapCost.of(planned, options.pixel_boost, moving), options, self.settings.max_swaps_per_request)
        frame = (await self._decode_upload(upload)).frame
        faces = await self._detect(frame)
        wanted = sources_used(planned)
        sources = [crop_face(frame, align_matrix(face.landmarks, RECOGNIZER_SIZE), RECOGNIZER_SIZE)
                   for face in pick_sources(faces, options, wanted)]
        del frame
        size = options.pixel_boost
        targets = sorted(((n, at, pair, face) for n, item in enumerate(planned) for pair, at, face in _targets(item, moving)),
                         key=lambda target: target[:2])  # destination by destination, frame by frame: for progress
        request = FaceSwapRequest(sources, [face.at(size).crop for *_, face in targets],
                                  [wanted.index(pair[0]) for _, _, pair, _ in targets], options.color_match,
                                  _enhancement(options, [face for *_, face in targets]))
        ends = {(n, at): end for end, (n, at, _, _) in enumerate(targets, 1)}
        progress.planned(list(ends.values()))
        with timed(self.telemetry, "swap"):  # embeddings and swaps in the same call: the latents never come back
            result = await self._swapped_in_chunks(request, progress)
        done: list[list[tuple[Target, Frame, float]]] = [[] for _ in planned]
        for target, crop, similarity in zip(targets, result.crops, result.similarity):
            done[target[0]].append((target, crop, float(similarity)))
        swapped = [_placed(item, size, answers, moving and item.destination.clip is not None,
                           self.offered.mask_choice(options, item.destination.info))
                   for item, answers in zip(planned, done)]
        clip_frames = sum(len(r.pastes) for r in swapped if r.moving)
        if clip_frames:
            self.telemetry.frames_swapped(clip_frames)
        return len(faces), swapped, skipped

    async def _swapped_in_chunks(self, request: FaceSwapRequest, progress: Progress) -> FaceSwapResult:
        """The request's swaps, one chunk after another, each holding its share of the worker's budget while the
        model service has it; once the task is cancelled (504) no further chunk is sent."""
        results, returned = [], 0
        for chunk in chunked(request, self.chunk_swaps):
            async with self.work.share(swaps(chunk)):
                (result,) = await self.models.swap_faces([chunk])
            results.append(result)
            returned += len(result.crops)
            progress.swapped(returned)
        return joined(results)

    async def _pictures(self, view: GalleryView, results: list[Swapped], options: SwapOptions) -> list[SwappedImage]:
        """Each result as one picture: a portrait's JPEG spliced into its prepared one, anything else composed and
        encoded whole."""
        media_type = MEDIA_TYPES[options.output_format]
        splices = [r.destination.clip is None and options.output_format == "jpeg" for r in results]
        spliced = [r for r, splice in zip(results, splices) if splice]
        whole = [r for r, splice in zip(results, splices) if not splice]
        encoded: dict[str, bytes] = {}
        if spliced:
            encoded |= zip([r.destination.name for r in spliced], await self._spliced_jpegs(
                [(view.outputs[r.destination.name], r.still[1]) for r in spliced]))
        if whole:
            encoded |= zip([r.destination.name for r in whole],
                           await self._encoded(await self._composed(view, whole), options.output_format))
        return [SwappedImage(r.destination.name, encoded[r.destination.name], media_type, *r.destination.size)
                for r in results]

    async def _clip(self, result: Swapped, options: SwapOptions) -> SwappedImage:
        """A clip swapped in every frame, encoded with its timing (and sound, in MP4)."""
        clip, clip_format = result.destination.clip, options.clip_format
        if clip is None or clip_format == "still":
            raise ValueError("only a moving clip is encoded as one")
        pasting = [0.0]  # frames are pasted as the encoder takes them; their time is reported as the paste stage
        frames = _timed_steps(clip.pasted(result.pastes, self.settings.visible_label), pasting)
        started = time.perf_counter()
        data = await asyncio.to_thread(encode_clip, frames, clip.timing, clip_format, self.settings.jpeg_quality,
                                       result.destination.file if clip.audio else None)
        self.telemetry.stage("paste", pasting[0])
        self.telemetry.stage("encode", time.perf_counter() - started - pasting[0])
        width, height = result.destination.size
        if clip_format == "mp4":  # H.264 in 4:2:0 takes even sizes
            width, height = width + width % 2, height + height % 2
        return SwappedImage(result.destination.name, data, CLIP_MEDIA_TYPES[clip_format], width, height,
                            frames=len(clip.frames), duration_s=round(clip.timing.seconds, 3))

    async def _measure(self, data: bytes, suffix: str) -> tuple[int, int]:
        """Faces and pixels of a portrait or clip an operator is adding, decoded as a destination is."""
        if not moves(suffix, data[:HEAD]):
            frame = (await self.decode(data, self.destination_limits)).frame
            return len(await self._faces(frame)), frame.shape[0] * frame.shape[1]
        try:
            return await measure_clip(data, suffix, self.live.bounds.clip, self.models)
        except ClipPastBound as exc:
            raise UploadTooLarge(f"The clip {exc}.") from exc
        except ClipRefused as exc:
            raise UndecodableImage(f"The clip {exc}.") from exc

    def _prepare(self, destination: Destination) -> PreparedOutput:
        """A usable destination's JPEG in bands, labelled base and parent ingredient, made once per file."""
        return prepare(destination, self.marker, self.settings.jpeg_quality, self.settings.visible_label)

    async def _decode_upload(self, upload: bytes) -> DecodedImage:
        self.telemetry.upload(len(upload))
        with timed(self.telemetry, "decode"):
            return await self.decode(upload, self.upload_limits)

    async def _detect(self, frame: Frame) -> list[Face]:
        """An upload's faces, timed and counted for /metrics."""
        with timed(self.telemetry, "detect"):
            faces = await self._faces(frame)
        self.telemetry.faces_found(len(faces))
        return faces

    async def _faces(self, frame: Frame) -> list[Face]:
        canvas, scale = await asyncio.to_thread(letterbox, frame)
        (detections,) = await self.models.run(DETECTOR, [canvas])
        return faces_from_detections(detections, scale)

    async def _spliced_jpegs(self, placed: list[tuple[PreparedOutput, list[Paste]]]) -> list[bytes]:
        """JPEGs re-encoding only the tiles the faces changed, spliced into each destination's prepared JPEG: one
        thread hand-off per picture for paste and encode together (paste reported as their sum)."""
        with timed(self.telemetry, "encode"):
            done = await asyncio.gather(*(asyncio.to_thread(self._spliced, output, pastes) for output, pastes in placed))
        self.telemetry.stage("paste", sum(seconds for _, seconds in done))
        return [data for data, _ in done]

    def _spliced(self, output: PreparedOutput, pastes: list[Paste]) -> tuple[bytes, float]:
        started = time.perf_counter()
        patched = output.patch(pastes)
        pasted = time.perf_counter() - started
        if patched is None:
            return self._encode_full(output, pastes), pasted
        return output.jpeg.splice(patched[1], patched[0]), pasted

    def _encode_full(self, output: PreparedOutput, pastes: list[Paste]) -> bytes:
        return encode_banded(output.full(pastes), self.settings.jpeg_quality)

    async def _composed(self, view: GalleryView, results: list[Swapped], label: bool = True) -> list[Frame]:
        """Each result as one whole frame, labelled where the label is on and asked for (a contact sheet labels
        itself): a portrait from its prepared output, a clip's still from its frame."""
        def compose(result: Swapped) -> Frame:
            at, pastes = result.still
            if result.destination.clip is None:
                return view.outputs[result.destination.name].full(pastes, label)
            return result.destination.clip.frame(at, pastes, self.settings.visible_label if label else None)

        with timed(self.telemetry, "paste"):
            return list(await asyncio.gather(*(asyncio.to_thread(compose, result) for result in results)))

    async def _encoded(self, frames: list[Frame], output_format: OutputFormat) -> list[bytes]:
        with timed(self.telemetry, "encode"):
            return list(await asyncio.gather(*(
                asyncio.to_thread(encode_image, frame, output_format, self.settings.jpeg_quality) for frame in frames
            )))

    async def _marked(self, pictures: list[tuple[bytes, str, Provenance]]) -> list[bytes]:
        """Each picture (or clip) with its content credentials, in parallel threads."""
        with timed(self.telemetry, "mark"):
            return list(await asyncio.gather(*(
                asyncio.to_thread(self.marker.mark, data, media_type, provenance)
                for data, media_type, provenance in pictures
            )))


def _enhancement(options: SwapOptions, faces: list[DestinationFace]) -> Enhancement | None:
    """The enhancer's part of the model call: each face's enhancer view, prepared when the gallery loaded."""
    if options.enhancer is None:
        return None
    views = [face.enhancer_view for face in faces if face.enhancer_view is not None]
    if len(views) < len(faces):
        raise ServiceNotReady("The gallery was analysed before the enhancer was loaded; retry shortly.")
    return Enhancement(options.enhancer, options.enhancer_blend / 100, options.enhancer_weight,
                       [view.face for view in views], [view.from_crop[options.pixel_boost] for view in views])


def _timed_steps(frames: Iterator[Frame], spent: list[float]) -> Iterator[Frame]:
    """The frames, adding the time each took to make to spent[0]."""
    while True:
        started = time.perf_counter()
        frame = next(frames, None)
        spent[0] += time.perf_counter() - started
        if frame is None:
            return
        yield frame


def _targets(item: Planned, moving: bool) -> Iterator[tuple[FacePair, int, DestinationFace]]:
    """(pair, frame, the destination face in it) for each face the item swaps: a portrait's in frame 0; a clip's in
    every frame it is in where the clip moves, else in the clip's still (the first frame any of its faces is in)."""
    clip = item.destination.clip
    if clip is None:
        for pair in item.pairs:
            yield pair, 0, item.destination.faces[pair[1] - 1]
        return
    still = None if moving else clip.first_frame_with(face for _, face in item.pairs)
    for pair in item.pairs:
        for at in clip.frames_with(pair[1]) if still is None else [still]:
            face = clip.faces[pair[1] - 1][at]
            if face is not None:
                yield pair, at, face


def _placed(item: Planned, size: int, done: list[tuple[Target, Frame, float]], moving: bool,
            masks: MaskChoice) -> Swapped:
    """A planned destination's share of the model's answers, pasted through its masks, by frame; each face's
    similarity is its mean over the frames it was swapped in."""
    pastes: dict[int, list[Paste]] = {}
    similarities: dict[FacePair, list[float]] = {}
    for (_, at, pair, face), crop, similarity in done:
        pastes.setdefault(at, []).append((crop, face.at(size, masks).region))
        similarities.setdefault(pair, []).append(float(similarity))
    faces = tuple(PlacedFace(source, destination, round(sum(values) / len(values), 4))
                  for (source, destination), values in similarities.items())
    return Swapped(item.destination, pastes, faces, moving)
