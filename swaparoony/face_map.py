"""Which upload face goes into which destination face: one pair by default, every face, or a face map.

`face_map` is written as people say it, `1:2,2:1`: upload face 1 into destination face 2 and upload face 2
into destination face 1. Faces are counted from 1, left to right, on both sides.
"""

from __future__ import annotations

import re

from .errors import BadRequest, FaceIdOutOfRange

FacePair = tuple[int, int]
"""(upload face, destination face), both 1-based."""
MAX_PAIRS = 32
PAIR = re.compile(r"\s*(\d{1,4})\s*:\s*(\d{1,4})\s*")


def parse_face_map(text: str | None) -> tuple[FacePair, ...]:
    """The pairs of a face map (none for an empty one); BadRequest saying how to write it, FaceIdOutOfRange for a
    destination face given twice."""
    if text is None or not text.strip():
        return ()
    parts = text.split(",")
    if len(parts) > MAX_PAIRS:
        raise BadRequest(f"face_map has {len(parts)} pairs; at most {MAX_PAIRS}.")
    pairs = []
    for part in parts:
        match = PAIR.fullmatch(part)
        if match is None or int(match[1]) < 1 or int(match[2]) < 1:
            raise BadRequest(f"face_map pair {part.strip()[:20]!r} is not 'upload face:destination face', e.g. "
                             "face_map=1:2,2:1 (faces counted from 1, left to right).")
        pairs.append((int(match[1]), int(match[2])))
    targets = [destination for _, destination in pairs]
    twice = sorted({d for d in targets if targets.count(d) > 1})
    if twice:
        raise FaceIdOutOfRange(f"face_map puts two upload faces into destination face(s) {twice}; each destination "
                               "face takes one.")
    return tuple(pairs)


def describe(pair: FacePair) -> str:
    """A pair as the person wrote it, for messages."""
    return f"{pair[0]}:{pair[1]}"
