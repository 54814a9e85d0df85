"""A swap's pictures as files in one ZIP archive, for clients that want the images themselves, not base64 in JSON."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath

from .engine import SwapOutcome
from .imaging.clip_codec import FILE_SUFFIXES as CLIP_FILE_SUFFIXES
from .imaging.vision import MEDIA_TYPES, SUFFIXES

FILE_SUFFIXES = {MEDIA_TYPES[output_format]: suffixes[0] for output_format, suffixes in SUFFIXES.items()} \
    | CLIP_FILE_SUFFIXES
"""The suffix each picture's (or clip's) file is named with, by its media type."""
INDEX = "results.json"


def results_archive(outcome: SwapOutcome) -> bytes:
    """The archive: one file per swapped destination (named after it), and results.json saying what each is.

    Stored, not deflated: the pictures are compressed already, and deflating them again costs CPU for nothing.
    """
    buffer = io.BytesIO()
    listed = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in outcome.swapped:
            name = PurePosixPath(image.destination_name).stem + FILE_SUFFIXES[image.media_type]
            archive.writestr(name, image.data)
            listed.append({"file": name, "destination_name": image.destination_name, **image.described()})
        index = {"faces_detected_in_source": outcome.faces_detected_in_source, "swapped_images": listed,
                 "skipped": [{"destination_name": s.destination_name, "reason": s.reason} for s in outcome.skipped]}
        archive.writestr(INDEX, json.dumps(index, indent=2))
    return buffer.getvalue()
