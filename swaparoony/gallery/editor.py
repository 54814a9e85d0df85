"""Operators add, replace and remove portraits and clips over the API; the files land in the destinations directory.

The directory stays the single source of truth: a write is a file written beside the others and renamed
into place, after which this replica reloads at once and every other replica sharing the volume picks it
up on its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..errors import BadRequest, GalleryNotWritable, NoFaceFound, UnknownDestination, UnsupportedImageFormat, UploadTooLarge
from .live import LiveGallery
from .portraits import IMAGE_SUFFIXES, Destination

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,99}")
"""A plain file name: no directories, no leading dot (hidden and temporary files are never portraits)."""
SIGNATURES = {".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",), ".png": (b"\x89PNG\r\n\x1a\n",),
              ".webp": (b"RIFF",), ".gif": (b"GIF87a", b"GIF89a"), ".webm": (b"\x1a\x45\xdf\xa3",)}
BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
"""The first box of an MP4, M4V or QuickTime file (at byte 4); `ftyp` in any file written this century."""
Measure = Callable[[bytes, str], Awaitable[tuple[int, int]]]
"""Decodes a portrait or clip (bytes, suffix) within the destination limits: the most faces in a frame and the pixels
of every frame; raises the decode errors, and UploadTooLarge for a clip past a SWAPAROONY_MAX_CLIP_* bound."""


class GalleryEditor:
    """Checks a portrait or clip before it is written, writes it atomically, and reloads the gallery."""

    def __init__(self, live: LiveGallery, measure: Measure, max_bytes: int) -> None:
        self.live = live
        self.measure = measure
        self.max_bytes = max_bytes

    async def put(self, name: str, data: bytes) -> tuple[Destination, bool]:
        """Add or replace a portrait or clip that has a face; the destination as analysed, and whether it is new."""
        checked_name(name)
        if len(data) > self.max_bytes:
            raise UploadTooLarge(f"The file is {len(data):,} bytes; the limit is {self.max_bytes:,}.")
        _check_format(name, data)
        faces, pixels = await self.measure(data, Path(name).suffix.lower())
        if faces == 0:
            raise NoFaceFound(f"No face was found in {name}, so it was not added: a destination needs a clearly visible face.")
        path = self.live.directory / name
        new = not path.exists()
        self._check_room(name, pixels)
        await asyncio.to_thread(_write_atomically, path, data)
        await self.live.reload()
        return self.live.view.gallery.destinations[name], new

    def _check_room(self, name: str, pixels: int) -> None:
        """Refuse a file the gallery's bounds have no room for; a replacement frees its predecessor's pixels."""
        others = [d for d in self.live.view.gallery.destinations.values() if d.name != name and d.frame.size]
        self.live.bounds.check_put(len(others) + 1, sum(d.pixels for d in others) + pixels)

    async def remove(self, name: str) -> None:
        """Delete a portrait's or clip's file and drop it from the gallery."""
        checked_name(name)
        try:
            await asyncio.to_thread((self.live.directory / name).unlink)
        except FileNotFoundError:
            raise UnknownDestination(f"There is no destination {name!r} (see POST /destinations).") from None
        except OSError as exc:
            raise _not_writable(exc) from exc
        await self.live.reload()


def checked_name(name: str) -> str:
    """A destination's file name, or BadRequest / UnsupportedImageFormat saying what a name may be."""
    if not NAME.fullmatch(name) or ".." in name:
        raise BadRequest(f"{name[:120]!r} is not a usable file name: letters, digits, spaces and ._()+- only, up to 100 "
                         "characters, starting with a letter or digit, no folders.")
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        raise UnsupportedImageFormat(f"{name!r} must end in one of {', '.join(IMAGE_SUFFIXES)}: destinations are JPEG, "
                                     "PNG or WebP pictures, or GIF, WebP, MP4, MOV or WebM clips.")
    return name


def _check_format(name: str, data: bytes) -> None:
    suffix = Path(name).suffix.lower()
    riff_not_webp = suffix == ".webp" and data[8:12] != b"WEBP"  # RIFF also holds WAV and AVI
    signed = data[4:8] in BOXES if suffix in (".mp4", ".m4v", ".mov") else data.startswith(SIGNATURES[suffix])
    if not signed or riff_not_webp:
        raise UnsupportedImageFormat(f"The file is not a {suffix[1:].upper()} file, as its name {name!r} says; "
                                     "name it after its format.")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target and rename over it, so a reload (here or on another replica) never reads half a file."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the first portrait of a gallery not made yet
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise _not_writable(exc) from exc


def _not_writable(exc: OSError) -> GalleryNotWritable:
    return GalleryNotWritable(
        f"The destinations directory cannot be changed ({exc.strerror or type(exc).__name__}). Mount a writable volume "
        "there (a PVC; a ConfigMap is read-only) to manage the gallery over the API."
    )
