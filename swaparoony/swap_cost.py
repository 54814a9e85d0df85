"""What a request asks of the model service, counted from its plan before any model call.

The unit is one swap: one 128x128 tile through inswapper, the model that dominates both the time and the model
service's memory of a request. A face at pixel_boost 256 or 512 is 4 or 16 tiles (models/pixel_boost.py), so a
request costs faces x tiles, summed over its destinations. The recognizer's work is not counted: it embeds the
upload faces a model call uses (the usual request one face, a face_map at most 32; once per chunk, see
swap_chunks.py), and re-embeds each swapped face once, not per tile, so it is at most as much again at pixel_boost
128 and a sixteenth at 512, and follows the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TooManySwaps
from .models.pixel_boost import BOOST_SIZES, factor
from .swap_plan import EVERY_FACE, Planned, SwapOptions


def tiles_per_face(pixel_boost: int) -> int:
    """Swaps one face costs at this crop size: (pixel_boost / 128)^2."""
    return factor(pixel_boost) ** 2


@dataclass(frozen=True)
class SwapCost:
    """The swaps a planned request asks for, and what they are made of."""

    faces: int
    """Destination faces swapped into, over all planned destinations."""
    destinations: int
    pixel_boost: int
    clip_frames: int = 0
    """Of the faces, those in clip frames (a clip's face counts once in every frame it is in)."""

    @classmethod
    def of(cls, planned: list[Planned], pixel_boost: int, clips_move: bool = True) -> SwapCost:
        """A plan's cost at its crop size; where clips move, a clip's face counts once in every frame it is in."""
        faces = [_faces(item, clips_move) for item in planned]
        moving = sum(count for item, count in zip(planned, faces) if item.destination.clip is not None and clips_move)
        return cls(sum(faces), len(planned), pixel_boost, moving)

    @property
    def tiles(self) -> int:
        return tiles_per_face(self.pixel_boost)

    @property
    def swaps(self) -> int:
        return self.faces * self.tiles

    def described(self) -> str:
        """The count in words: 2,048 swaps (32 faces in 8 destinations x 16 tiles at pixel_boost 512)."""
        frames = f", {self.clip_frames:,} of them in clip frames," if self.clip_frames else ""
        return (f"{_counted(self.swaps, 'swap')} ({_counted(self.faces, 'face')}{frames} in "
                f"{_counted(self.destinations, 'destination')} x {_counted(self.tiles, 'tile')} at pixel_boost "
                f"{self.pixel_boost})")


def refuse_past(cost: SwapCost, options: SwapOptions, limit: int) -> None:
    """TooManySwaps saying what was counted and what to lower, when the cost is past the per-request limit."""
    if cost.swaps <= limit:
        return
    lower = ["fewer destinations"]
    smaller = [size for size in BOOST_SIZES if size < cost.pixel_boost]
    if smaller:
        fits = ", ".join(f"{cost.faces * tiles_per_face(size):,} at {size}" for size in smaller)
        lower.append(f"a lower pixel_boost (the same faces are {fits} swaps)")
    if options.face_map:
        lower.append("fewer face_map pairs")
    elif options.destination_face_id == EVERY_FACE:
        lower.append("a destination_face_id instead of 0 (which means every face of each destination)")
    if cost.clip_frames:
        lower.append("clip_format=still (a clip's first swapped frame instead of every frame)")
    raise TooManySwaps(f"This request asks for {cost.described()}; the limit is {limit:,} per request. "
                       f"Ask for {_either(lower)}.")


def _faces(item: Planned, clips_move: bool) -> int:
    clip = item.destination.clip
    if clip is None or not clips_move:
        return len(item.pairs)
    return sum(len(clip.frames_with(face)) for _, face in item.pairs)


def _counted(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _either(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
