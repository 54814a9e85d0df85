"""face_map as people write it, and the errors that say how to write it."""

from __future__ import annotations

import pytest

from swaparoony.errors import BadRequest, FaceIdOutOfRange
from swaparoony.face_map import MAX_PAIRS, parse_face_map


def test_pairs_are_read_as_written() -> None:
    assert parse_face_map("1:2,2:1") == ((1, 2), (2, 1))
    assert parse_face_map(" 3 : 1 , 1:3 ") == ((3, 1), (1, 3))
    assert parse_face_map(None) == () and parse_face_map("  ") == ()


@pytest.mark.parametrize("text", ["1-2", "1:2,", "a:b", "0:1", "1:0", "1:2:3", "12345:1"])
def test_a_map_that_cannot_be_read_says_how_to_write_one(text: str) -> None:
    with pytest.raises(BadRequest, match="e.g. face_map=1:2,2:1"):
        parse_face_map(text)


def test_two_faces_into_one_and_too_many_pairs_are_refused() -> None:
    with pytest.raises(FaceIdOutOfRange, match=r"destination face\(s\) \[2\]"):
        parse_face_map("1:2,3:2")
    with pytest.raises(BadRequest, match=f"at most {MAX_PAIRS}"):
        parse_face_map(",".join(f"1:{i}" for i in range(1, MAX_PAIRS + 2)))
