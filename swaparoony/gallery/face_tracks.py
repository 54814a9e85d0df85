"""Which face in each frame of a clip is the same person: so "face 1" is one person from the first frame to the last.

Faces are followed from frame to frame by how far their box centre moved, measured in face widths: a face at a
booth clip's frame rates moves a fraction of its width between frames, while two people stand at least a face
width apart. A face that leaves for a few frames (turned away, covered) is taken up again where it left.
"""

from __future__ import annotations

from ..types import Face

REACH = 1.0
"""How far a face may move from one frame to the next, in face widths, and still be the same face (over a gap of
frames where it was not seen, that much per frame, up to GAP_REACH)."""
GAP_REACH = 2.0
"""However long a face was gone, one that comes back further than this from where it left is someone else: two
people stand at least a face width apart, and a face rarely crosses two of its widths unseen."""
GAP = 12
"""Frames a face may be missing (not detected) and still be followed: a second at 12 fps."""
Track = dict[int, int]
"""Frame index -> the index of the track's face among that frame's faces."""


def face_tracks(per_frame: list[list[Face]]) -> list[Track]:
    """Each track's face per frame; tracks in the order their faces first appear, left to right within a frame (so
    the first frame's faces are 1, 2, ... left to right, as in a portrait)."""
    tracks: list[Track] = []
    for index, faces in enumerate(per_frame):
        taken_tracks: set[int] = set()
        taken_faces: set[int] = set()
        for _, track, face in sorted(_candidates(tracks, per_frame, index, faces)):
            if track not in taken_tracks and face not in taken_faces:
                tracks[track][index] = face
                taken_tracks.add(track)
                taken_faces.add(face)
        tracks += [{index: face} for face in range(len(faces)) if face not in taken_faces]
    return tracks


def _candidates(tracks: list[Track], per_frame: list[list[Face]], index: int,
                faces: list[Face]) -> list[tuple[float, int, int]]:
    """(distance, track, face) for every face within reach of a track seen at most GAP frames ago."""
    found = []
    for number, track in enumerate(tracks):
        seen = max(track)
        if index - seen > GAP:
            continue
        last = per_frame[seen][track[seen]]
        for position, face in enumerate(faces):
            distance = _moved(last, face)
            if distance <= min(REACH * (index - seen), GAP_REACH):
                found.append((distance, number, position))
    return found


def _moved(before: Face, after: Face) -> float:
    """How far the box centre moved, in widths of the wider box."""
    (l0, t0, r0, b0), (l1, t1, r1, b1) = before.bbox, after.bbox
    width = max(r0 - l0, r1 - l1, 1.0)
    return float(((l1 + r1 - l0 - r0) ** 2 + (t1 + b1 - t0 - b0) ** 2) ** 0.5 / 2 / width)
