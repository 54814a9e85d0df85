"""How far one long request has come, for the task that runs it: frames swapped of the frames it makes, and its stage.

A picture is one frame, a clip each frame a face is swapped into. The engine moves it on after each chunk of model
work; a task's status reads it.
"""

from __future__ import annotations

import bisect
from typing import Any


class Progress:
    """Frames done of frames to make; `stage` is queued, swapping, encoding or done."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.stage = "queued"
        self._frame_ends: list[int] = []

    def planned(self, frame_ends: list[int]) -> None:
        """The request's model targets are in frame order; frame_ends[i] is one past the last target of frame i."""
        self._frame_ends = sorted(frame_ends)
        self.total, self.done, self.stage = len(frame_ends), 0, "swapping"

    def swapped(self, targets: int) -> None:
        """This many targets (from the first) have come back: the frames they complete are done."""
        self.done = bisect.bisect_right(self._frame_ends, targets)

    def encoding(self) -> None:
        self.done, self.stage = self.total, "encoding"

    def described(self) -> dict[str, Any]:
        """What a task's status shows."""
        return {"frames_done": self.done, "frames_total": self.total, "stage": self.stage}
