"""How much gallery one replica holds: decoded portraits, and their pixels (each held as 3 bytes, with its crops beside it).

Every portrait stays decoded in memory for the life of the gallery, so a directory filled by a script, or an
operator's PUTs, would otherwise grow the service without end. Past either bound the loader skips a file
with the reason, and an operator's PUT is refused before anything is written.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..errors import GalleryFull
from ..imaging.clip_codec import ClipBounds

SKIPPED = "skipped: "
"""How a reason given for a file past a bound begins: such a file is read again whenever the gallery changes."""


@dataclass(frozen=True)
class GalleryBounds:
    """At most `max_destinations` portraits and `max_pixels` decoded pixels in one gallery."""

    max_destinations: int = sys.maxsize
    max_pixels: int = sys.maxsize
    """Every frame counts: a clip holds all of its frames."""
    clip: ClipBounds = ClipBounds()

    def count_reason(self) -> str:
        return (f"{SKIPPED}the gallery holds at most {self.max_destinations:,} portraits "
                "(SWAPAROONY_MAX_DESTINATIONS); remove one or raise the bound")

    def pixel_reason(self, pixels: int, held: int) -> str:
        return (f"{SKIPPED}its {pixels:,} pixels would take the gallery past {self.max_pixels:,} decoded pixels "
                f"({held:,} held; SWAPAROONY_MAX_GALLERY_PIXELS); use a smaller portrait or remove one")

    def check_put(self, portraits_after: int, pixels_after: int) -> None:
        """Refuse an operator's portrait that the loader would skip."""
        if portraits_after > self.max_destinations:
            raise GalleryFull(f"The gallery is full: it holds at most {self.max_destinations:,} portraits. "
                              "Remove one first (DELETE /destinations/{name}).")
        if pixels_after > self.max_pixels:
            raise GalleryFull(f"This portrait would take the gallery to {pixels_after:,} decoded pixels; the bound is "
                              f"{self.max_pixels:,}. Send a smaller portrait or remove one first.")


def skipped(reason: str | None) -> bool:
    """Whether a destination was left out for a bound (and may fit once another portrait goes)."""
    return bool(reason and reason.startswith(SKIPPED))


def pixels_of(height_width: tuple[int, ...]) -> int:
    """Pixels of a frame's shape."""
    return int(height_width[0]) * int(height_width[1])
