"""Faces followed across a clip's frames: the same person keeps the same number from the first frame to the last."""

from __future__ import annotations

import numpy as np

from swaparoony.gallery.face_tracks import face_tracks
from swaparoony.types import Face


def face(x: float, y: float = 100.0, side: float = 64.0) -> Face:
    return Face((x - side / 2, y - side / 2, x + side / 2, y + side / 2), np.zeros((5, 2), np.float32), 0.9)


def test_two_people_walking_keep_their_numbers_left_to_right_on_the_first_frame() -> None:
    frames = [[face(100 + 20 * i), face(400 - 20 * i)] for i in range(5)]
    frames = [sorted(faces, key=lambda f: f.bbox[0]) for faces in frames]  # the detector gives them left to right
    tracks = face_tracks(frames)
    assert len(tracks) == 2
    assert [frames[i][tracks[0][i]].bbox[0] for i in range(5)] == [68 + 20 * i for i in range(5)]
    assert [frames[i][tracks[1][i]].bbox[0] for i in range(5)] == [368 - 20 * i for i in range(5)]


def test_a_face_missing_for_a_few_frames_is_taken_up_again_and_a_newcomer_is_numbered_after() -> None:
    frames = [[face(100 + 32 * i)] if i not in (3, 4) else [] for i in range(8)]
    frames[6].append(face(600))  # someone comes in on frame 6, right of the first person
    tracks = face_tracks(frames)
    assert len(tracks) == 2
    assert sorted(tracks[0]) == [0, 1, 2, 5, 6, 7]  # the first person, across the gap
    assert sorted(tracks[1]) == [6]


def test_a_face_too_far_from_where_it_was_is_someone_else() -> None:
    tracks = face_tracks([[face(100)], [face(300)]])
    assert [sorted(track) for track in tracks] == [[0], [1]]


def test_a_stranger_far_from_where_someone_left_is_not_given_their_number() -> None:
    tracks = face_tracks([[face(100)], [face(100)], [face(100)], [], [], [], [], [], [face(450)]])
    assert [sorted(track) for track in tracks] == [[0, 1, 2], [8]]
