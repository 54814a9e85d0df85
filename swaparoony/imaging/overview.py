"""Pictures a person reads at a glance: an upload's faces boxed and numbered, and results as one contact sheet."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..types import Face, Frame

BOX_BGR = (40, 220, 255)  # amber: visible on skin, hair and most backgrounds
INK_BGR = (20, 20, 20)
PAPER_BGR = (250, 250, 250)
SKIPPED_BGR = (215, 215, 215)
FONT = cv2.FONT_HERSHEY_SIMPLEX
SHEET_TILE = 480
SHEET_COLUMNS = 4
CAPTION = 44
GUTTER = 6


def numbered_faces(frame: Frame, faces: list[Face]) -> Frame:
    """The frame with each face boxed and labelled 1, 2, ... in the order given (left to right)."""
    picture = frame.copy()
    line = max(2, round(max(frame.shape[:2]) / 400))
    for number, face in enumerate(faces, 1):
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        cv2.rectangle(picture, (x1, y1), (x2, y2), BOX_BGR, line)
        scale = max(0.6, (y2 - y1) / 120)
        label = str(number)
        (width, height), baseline = cv2.getTextSize(label, FONT, scale, line)
        top = y1 - height - baseline - 2 * line if y1 - height - baseline - 2 * line >= 0 else y2  # above, else below
        cv2.rectangle(picture, (x1, top), (x1 + width + 2 * line, top + height + baseline + 2 * line), BOX_BGR, -1)
        cv2.putText(picture, label, (x1 + line, top + height + line), FONT, scale, INK_BGR, line, cv2.LINE_AA)
    return picture


def contact_sheet(results: list[tuple[str, Frame | str]]) -> Frame:
    """Each result fitted into a square tile with its name under it; a reason instead of a frame is a grey tile
    saying why that destination was skipped."""
    columns = min(SHEET_COLUMNS, max(1, len(results)))
    rows = math.ceil(len(results) / columns)
    sheet = np.full((rows * (SHEET_TILE + CAPTION), columns * SHEET_TILE, 3), PAPER_BGR, np.uint8)
    for index, (name, frame) in enumerate(results):
        top, left = (index // columns) * (SHEET_TILE + CAPTION), (index % columns) * SHEET_TILE
        cell = sheet[top + GUTTER : top + SHEET_TILE - GUTTER, left + GUTTER : left + SHEET_TILE - GUTTER]
        if isinstance(frame, str):
            cell[:] = SKIPPED_BGR
            _caption(cell, frame, 0, (cell.shape[0] - CAPTION) // 2)
        else:
            _fit(frame, cell)
        _caption(sheet, name if not isinstance(frame, str) else f"{name} (skipped)", left, top + SHEET_TILE)
    return sheet


def _fit(frame: Frame, cell: np.ndarray) -> None:
    """Scale the frame into the cell, keeping its aspect, centred."""
    height, width = frame.shape[:2]
    scale = min(cell.shape[0] / height, cell.shape[1] / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    y, x = (cell.shape[0] - size[1]) // 2, (cell.shape[1] - size[0]) // 2
    cell[y : y + size[1], x : x + size[0]] = small


def _caption(picture: Frame, text: str, left: int, top: int) -> None:
    """Write one line of text in the caption band that starts at (left, top): under a tile, or in a skipped cell."""
    text = text.encode("ascii", "replace").decode()  # OpenCV's fonts draw ASCII only
    while len(text) > 4 and cv2.getTextSize(text, FONT, 0.6, 2)[0][0] > SHEET_TILE - 24:
        text = text[:-4] + "..."
    cv2.putText(picture, text, (left + 8, top + CAPTION - 16), FONT, 0.6, INK_BGR, 2, cv2.LINE_AA)
