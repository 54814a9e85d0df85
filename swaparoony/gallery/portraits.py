"""The destination portraits and clips: decoded, detected and aligned once at start-up (a clip's faces in every
frame, followed across them), then only read."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from ..errors import GalleryUnavailable, SwaparoonyError, UnknownDestination
from ..imaging.clip_codec import CLIP_SUFFIXES, ClipBounds, ClipRefused, DecodedClip, decode_clip, moves
from ..imaging.face_geometry import PasteRegion, align_matrix, crop_face, crop_mask, estimate_similarity, paste_region
from ..imaging.face_masks import BOX, MASK_SIZE, FaceMasks, MaskChoice
from ..imaging.vision import MEDIA_TYPES as FORMAT_MEDIA_TYPES, SUFFIXES
from ..models import face_enhancer, face_occluder, face_parser, rivagan
from ..models.model_calls import Loaded, ModelCalls
from ..models.pixel_boost import BOOST_SIZES
from ..models.scrfd import ROLE as DETECTOR, faces_from_detections, letterbox
from ..types import AffineMatrix, DecodedImage, Face, Frame
from .bounds import GalleryBounds, pixels_of
from .clips import Clip
from .face_tracks import face_tracks
from .index import INDEX_NAME, NOT_SAID, DestinationInfo, GalleryIndex

logger = logging.getLogger(__name__)

MEDIA_TYPES = {suffix: FORMAT_MEDIA_TYPES[name] for name, suffixes in SUFFIXES.items() for suffix in suffixes} \
    | CLIP_SUFFIXES
"""A destination file's media type by its suffix, from imaging/vision.py's and clip_codec.py's tables."""
IMAGE_SUFFIXES = tuple(MEDIA_TYPES)
"""Every file the gallery reads: portraits and clips."""
UNREADABLE: Frame = np.zeros((0, 0, 3), dtype=np.uint8)
T = TypeVar("T")
Decode = Callable[[bytes], Awaitable[DecodedImage]]
"""Decodes a destination file at full size, within the service's decode budget."""
READ_AT_ONCE = 4
"""Portraits decoded at once while loading: enough to keep the decode processes busy, few enough that the frames
decoded before the pixel bound is checked stay a handful. A clip is decoded on its own."""
LOAD_CHUNK = 64
"""Items per model call while the gallery loads (frames to mark and search, faces to parse): a gallery of clips has
thousands, and one call would hold them all in the model service at once."""
Read = tuple[str, Frame, bytes, "str | None", "DecodedClip | None"]
"""(name, the frame or a clip's first frame, the file, why it cannot be used, the clip)."""
HEAD = 32
"""Bytes of a file that say whether a WebP is animated."""


@dataclass(frozen=True)
class AlignedFace:
    """A destination face aligned at one crop size: what the swapper gets, and where its result is pasted."""

    crop: Frame
    region: PasteRegion


@dataclass(frozen=True)
class EnhancerView:
    """A destination face as the face enhancers see it: aligned to their FFHQ 512 template, and each pixel-boost
    crop's warp into it (so a swapped crop is placed in it without going back to the frame)."""

    face: Frame
    from_crop: dict[int, AffineMatrix]


@dataclass(frozen=True)
class DestinationFace:
    """A face in a destination, aligned once at every pixel-boost size, with its masks and its enhancer view where
    those models are loaded."""

    face: Face
    aligned: dict[int, AlignedFace]
    masks: FaceMasks = FaceMasks()
    enhancer_view: EnhancerView | None = None

    def at(self, size: int, choice: MaskChoice = BOX) -> AlignedFace:
        """The face aligned at this crop size (one of pixel_boost.BOOST_SIZES), pasted through the chosen masks."""
        aligned = self.aligned[size]
        if choice == BOX:
            return aligned
        region = aligned.region
        mask, keep = self.masks.in_box(choice, self.aligned[MASK_SIZE].region.matrix, region.x1 - region.x0,
                                       region.y1 - region.y0)
        return AlignedFace(aligned.crop, dataclasses.replace(region, mask=mask, keep=keep))

    @property
    def crop(self) -> Frame:
        """The 128x128 crop inswapper takes without pixel boost."""
        return self.aligned[128].crop

    @property
    def region(self) -> PasteRegion:
        """Where the 128x128 result is pasted."""
        return self.aligned[128].region


@dataclass(frozen=True)
class Destination:
    """One portrait; an unusable one keeps its name and a reason instead of faces."""

    name: str
    frame: Frame
    faces: tuple[DestinationFace, ...]
    reason: str | None = None
    file: bytes = b""
    """The file as the operator gave it: the parent its results name in their content credentials."""
    info: DestinationInfo = NOT_SAID
    """The gallery index's title, order and swappable faces for it."""
    clip: Clip | None = None
    """A moving destination's frames and tracked faces (`frame` is its first frame, `faces` each tracked face where
    it first appears)."""

    @property
    def media_type(self) -> str:
        """The file's media type, by its name's suffix (the only files the gallery reads)."""
        return MEDIA_TYPES[Path(self.name).suffix.lower()]

    @property
    def offered_faces(self) -> list[int]:
        """The 1-based faces people may swap into: all of them, unless the gallery index narrows them."""
        return [i for i in range(1, len(self.faces) + 1) if self.info.faces is None or i in self.info.faces]

    @property
    def pixels(self) -> int:
        """Decoded pixels it holds (what SWAPAROONY_MAX_GALLERY_PIXELS bounds): every frame of a clip."""
        return _pixels(self.frame, self.clip)

    @property
    def size(self) -> tuple[int, int]:
        """Width and height; (0, 0) for a file that could not be read."""
        return (self.frame.shape[1], self.frame.shape[0])


class Gallery:
    """Destinations by file name, in the index's order, then name order."""

    def __init__(self, destinations: list[Destination], index: GalleryIndex | None = None) -> None:
        self.index = index or GalleryIndex({})
        arranged = [dataclasses.replace(d, info=self.index.info(d.name)) for d in destinations]
        arranged.sort(key=lambda d: (d.info.order is None, d.info.order or 0, d.name))
        self.destinations = {destination.name: destination for destination in arranged}

    def arranged(self, index: GalleryIndex) -> Gallery:
        """The same destinations, arranged and described by another index."""
        return Gallery(list(self.destinations.values()), index)

    @property
    def usable(self) -> bool:
        """Whether any destination has a face to swap into."""
        return any(destination.faces for destination in self.destinations.values())

    @classmethod
    async def load(cls, paths: list[Path], models: ModelCalls, decode: Decode, max_bytes: int,
                   kept: list[Destination], index: GalleryIndex | None = None,
                   bounds: GalleryBounds = GalleryBounds(), models_loaded: Loaded | None = None) -> Gallery:
        """Read and decode these files off the event loop, in order and within the bounds (a clip's every frame), and
        detect all their faces in one batched call, follow each clip's faces across its frames, then (where `models_loaded` has those models) parse and occlusion-mask them in one call
        each; the gallery is them and the destinations kept as they are. Where the watermark encoder is loaded, each
        frame is watermarked first, so every result made from it carries the mark."""
        read = await _read_within(paths, decode, max_bytes, kept, bounds)
        usable = [(name, clip.frames if clip else [frame]) for name, frame, _, reason, clip in read if reason is None]
        frames = [frame for _, held in usable for frame in held]
        if (models_loaded or {}).get(rivagan.ROLE):  # marked before anything is cut from them
            frames = [marked for part in _parts(frames) for marked in await rivagan.watermarked(part, models)]
        files = {name: file for name, _, file, _, _ in read}
        clips = {name: clip for name, _, _, reason, clip in read if reason is None and clip is not None}
        broken = [Destination(name, UNREADABLE, (), reason) for name, _, _, reason, _ in read if reason is not None]
        found = iter(zip(frames, await _faces_in(frames, models)))
        loaded = []
        for name, held in usable:
            mine = [next(found) for _ in held]
            if name in clips:
                loaded.append(await asyncio.to_thread(_clip_destination, name, mine, clips[name], files[name]))
            else:
                loaded.append(_destination(name, mine[0][0], files[name], mine[0][1]))
        loaded = await _analysed(loaded, models, models_loaded or {})
        for destination in loaded + broken:
            moving = f", {len(destination.clip.frames)} frames" if destination.clip else ""
            logger.info("destination %s: %d face(s)%s%s", destination.name, len(destination.faces), moving,
                        f" ({destination.reason})" if destination.reason else "")
        return cls(kept + loaded + broken, index)

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


def listing(directory: Path, quiet: bool = False) -> dict[str, tuple[int, int, int]]:
    """Each image file's (and the index's) size, modification time and inode, following symlinks (a ConfigMap
    mount swaps a symlink to publish new files): what changes when a destination is added, replaced or removed."""
    found = {}
    for path in _image_paths(directory, quiet):
        try:
            info = path.stat()
            found[path.name] = (info.st_size, info.st_mtime_ns, info.st_ino)
        except OSError:
            found[path.name] = (-1, -1, -1)  # a dangling link: read, and reported as unreadable
    return found


def _image_paths(directory: Path, quiet: bool) -> list[Path]:
    """The directory's entries with an image suffix; an unreadable directory stops the service being ready."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        if not quiet:
            logger.warning("no destinations directory at %s", directory.resolve())
        return []
    except OSError as exc:
        logger.error("the destinations directory %s cannot be read: %s", directory.resolve(), exc.strerror or exc)
        raise GalleryUnavailable(
            f"The destinations directory cannot be read ({exc.strerror or type(exc).__name__}); the server log names it."
        ) from exc
    paths = [path for path in entries if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]
    if not paths and not quiet:
        logger.warning("no destination images in %s", directory.resolve())
    return paths + [path for path in entries if path.name == INDEX_NAME]


async def _read_within(paths: list[Path], decode: Decode, max_bytes: int, kept: list[Destination],
                       bounds: GalleryBounds) -> list[Read]:
    """Each file read in order, a few at a time; those past the portrait or pixel bound skipped with the reason."""
    room = bounds.max_destinations - sum(1 for destination in kept if destination.frame.size)
    held = sum(destination.pixels for destination in kept)
    read: list[Read] = []
    waiting = list(paths)
    while waiting and room > 0:
        size = min(READ_AT_ONCE, room)
        at = next((i for i, path in enumerate(waiting[:size]) if path.suffix.lower() in CLIP_SUFFIXES), None)
        size = size if at is None else max(at, 1)  # a clip alone: its frames are counted before the next is read
        group, waiting = waiting[:size], waiting[size:]
        for name, frame, data, reason, clip in await asyncio.gather(*(_read(path, decode, max_bytes, bounds.clip)
                                                                      for path in group)):
            pixels = _pixels(frame, clip)
            if reason is None and held + pixels > bounds.max_pixels:
                frame, data, reason, clip = UNREADABLE, b"", bounds.pixel_reason(pixels, held), None
                logger.warning("destination %s %s", name, reason)
            elif reason is None:
                held, room = held + pixels, room - 1
            read.append((name, frame, data, reason, clip))
    for path in waiting:
        logger.warning("destination %s %s", path.name, bounds.count_reason())
        read.append((path.name, UNREADABLE, b"", bounds.count_reason(), None))
    return read


async def measure_clip(data: bytes, suffix: str, bounds: ClipBounds, models: ModelCalls) -> tuple[int, int]:
    """The most faces in any frame and the pixels of every frame of a clip an operator is adding, decoded and detected
    as a load does (the load after the write follows the faces and marks the frames); raises ClipRefused."""
    clip = await asyncio.to_thread(decode_clip, data, suffix, bounds)
    return max(len(faces) for faces in await _faces_in(clip.frames, models)), _pixels(clip.frames[0], clip)


async def _faces_in(frames: list[Frame], models: ModelCalls) -> list[list[Face]]:
    """Every frame's faces: LOAD_CHUNK frames a detector call, each chunk letterboxed off the event loop (so a long
    clip holds one chunk of canvases at a time)."""
    found: list[list[Face]] = []
    for part in _parts(frames):
        canvases = await asyncio.to_thread(lambda chunk: [letterbox(frame) for frame in chunk], part)
        detections = await models.run(DETECTOR, [canvas for canvas, _ in canvases])
        found += [faces_from_detections(rows, scale) for (_, scale), rows in zip(canvases, detections)]
    return found


def _parts(items: list[T]) -> list[list[T]]:
    """The items in LOAD_CHUNK-sized model calls."""
    return [items[start:start + LOAD_CHUNK] for start in range(0, len(items), LOAD_CHUNK)]


async def _run(models: ModelCalls, role: str, items: list[Any]) -> list[Any]:
    """A role's answers for many items, LOAD_CHUNK at a time."""
    return [answer for part in _parts(items) for answer in await models.run(role, part)]


def _pixels(frame: Frame, clip: Clip | DecodedClip | None) -> int:
    """Decoded pixels held: every frame of a clip."""
    return sum(pixels_of(f.shape) for f in clip.frames) if clip is not None else pixels_of(frame.shape)


async def _read(path: Path, decode: Decode, max_bytes: int, bounds: ClipBounds) -> Read:
    """(name, frame, file, None, clip or None), or (name, an empty frame, no bytes, why it cannot be used, None)."""
    try:
        data = await asyncio.to_thread(read_regular_file, path, max_bytes)
        if moves(path.suffix.lower(), data[:HEAD]):
            clip = await asyncio.to_thread(decode_clip, data, path.suffix.lower(), bounds)
            return path.name, clip.frames[0], data, None, clip
        return path.name, (await decode(data)).frame, data, None, None
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror or type(exc).__name__}"
    except SwaparoonyError as exc:
        reason = f"cannot be read: {exc}"
    except ClipRefused as exc:
        reason = f"clip {exc}"
    logger.warning("destination %s skipped: %s", path, reason)
    return path.name, UNREADABLE, b"", reason, None


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes; FIFOs, devices and directories are refused without blocking on them."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file (a directory, FIFO or device)")
        if info.st_size > max_bytes:
            raise OSError(0, f"{info.st_size:,} bytes, over the {max_bytes:,}-byte limit")
        with os.fdopen(os.dup(descriptor), "rb") as file:
            return file.read(max_bytes + 1)
    finally:
        os.close(descriptor)


def _destination(name: str, frame: Frame, file: bytes, faces: list[Face]) -> Destination:
    if not faces:
        return Destination(name, frame, (), reason="no face found")
    return Destination(name, frame, tuple(DestinationFace(face, _aligned(frame, face)) for face in faces), file=file)


def _clip_destination(name: str, found: list[tuple[Frame, list[Face]]], decoded: DecodedClip,
                      file: bytes) -> Destination:
    """A clip with its faces tracked across frames, each aligned in every frame it is in."""
    frames = [frame for frame, _ in found]
    tracks = face_tracks([faces for _, faces in found])
    if not tracks:
        return Destination(name, frames[0], (), reason="no face found in any frame")
    faces = tuple(tuple(DestinationFace(found[i][1][track[i]], _aligned(frames[i], found[i][1][track[i]]))
                        if i in track else None for i in range(len(frames))) for track in tracks)
    clip = Clip(tuple(frames), decoded.timing, faces, decoded.audio)
    return Destination(name, frames[0], _first_seen(faces), file=file, clip=clip)


def _first_seen(tracks: tuple[tuple[DestinationFace | None, ...], ...]) -> tuple[DestinationFace, ...]:
    """Each tracked face where it first appears: what /destinations counts and a swap plan checks face ids against."""
    return tuple(next(face for face in track if face is not None) for track in tracks)


def _slots(destination: Destination) -> list[tuple[Frame, DestinationFace]]:
    """Every face a destination holds with the frame it is in: a clip's in each of its frames."""
    if destination.clip is None:
        return [(destination.frame, face) for face in destination.faces]
    clip = destination.clip
    return [(clip.frames[i], face) for track in clip.faces for i, face in enumerate(track) if face is not None]


def _refilled(destination: Destination, done: Iterator[DestinationFace]) -> Destination:
    """The destination with its faces replaced, in _slots' order."""
    if destination.clip is None:
        return dataclasses.replace(destination, faces=tuple(next(done) for _ in destination.faces))
    tracks = tuple(tuple(None if face is None else next(done) for face in track) for track in destination.clip.faces)
    return dataclasses.replace(destination, faces=_first_seen(tracks), clip=dataclasses.replace(destination.clip,
                                                                                                 faces=tracks))


async def _analysed(destinations: list[Destination], models: ModelCalls, files: Loaded) -> list[Destination]:
    """The destinations with what their faces need for masks and enhancers, where those models are loaded: one
    parser call and one occluder call for all their faces (every frame's of a clip), and each face's enhancer view."""
    slots = [slot for destination in destinations for slot in _slots(destination)]
    if not slots:
        return destinations
    crops = [face.at(MASK_SIZE).crop for _, face in slots]
    labels = await _run(models, face_parser.ROLE, crops) if files.get(face_parser.ROLE) else [None] * len(slots)
    occlusion = await _run(models, face_occluder.ROLE, crops) if files.get(face_occluder.ROLE) else [None] * len(slots)
    views = [_enhancer_view(frame, face) for frame, face in slots] if files.get(face_enhancer.ROLE) \
        else [None] * len(slots)
    done = iter(dataclasses.replace(face, masks=FaceMasks(parsed, visible), enhancer_view=view)
                for (_, face), parsed, visible, view in zip(slots, labels, occlusion, views))
    return [_refilled(destination, done) for destination in destinations]


def _enhancer_view(frame: Frame, face: DestinationFace) -> EnhancerView:
    to_ffhq = estimate_similarity(face.face.landmarks.astype(np.float64), face_enhancer.FFHQ_512)
    view = crop_face(frame, to_ffhq, face_enhancer.ENHANCER_SIZE)
    square = np.vstack([to_ffhq, [0.0, 0.0, 1.0]])
    from_crop = {size: (square @ np.vstack([cv2.invertAffineTransform(align_matrix(face.face.landmarks, size)),
                                             [0.0, 0.0, 1.0]]))[:2] for size in face.aligned}
    return EnhancerView(view, from_crop)


def _aligned(frame: Frame, face: Face) -> dict[int, AlignedFace]:
    """The face aligned at every pixel-boost size; one paste box and mask serve them all."""
    aligned: dict[int, AlignedFace] = {}
    for size in BOOST_SIZES:
        matrix = align_matrix(face.landmarks, size)
        region = aligned[BOOST_SIZES[0]].region.for_crop(matrix) if aligned else paste_region(frame.shape, matrix, crop_mask(size))
        aligned[size] = AlignedFace(crop_face(frame, matrix, size), region)
    return aligned
