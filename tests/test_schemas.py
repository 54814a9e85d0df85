"""/swap's JSON, written by hand for speed, is the document its pydantic model describes."""

from __future__ import annotations

import base64
import json

from http_api.schemas import SwapResponse, swap_json
from swaparoony.engine import Skipped, SwapOutcome, SwappedImage


def test_swap_json_is_a_valid_swap_response_with_every_value_intact() -> None:
    outcome = SwapOutcome(
        faces_detected_in_source=3,
        swapped=[SwappedImage('a "quoted" \\ näme.jpg', b"\xff\xd8\x00\x01picture", "image/jpeg", 640, 480),
                 SwappedImage("b.png", bytes(range(256)) * 10, "image/png", 1280, 1280)],
        skipped=[Skipped("c.jpg", 'no face found\nat "all"')],
    )
    body = swap_json(outcome)
    parsed = SwapResponse.model_validate_json(body)  # the documented shape, every field present
    assert parsed.success is True and parsed.message == "Successfully swapped face onto 2 images"
    assert parsed.faces_detected_in_source == 3
    assert [base64.b64decode(i.image_data) for i in parsed.swapped_images] == [i.data for i in outcome.swapped]
    assert [(i.destination_name, i.media_type, i.width, i.height) for i in parsed.swapped_images] == [
        ('a "quoted" \\ näme.jpg', "image/jpeg", 640, 480), ("b.png", "image/png", 1280, 1280)]
    assert [(s.destination_name, s.reason) for s in parsed.skipped] == [("c.jpg", 'no face found\nat "all"')]
    assert list(json.loads(body)) == list(SwapResponse.model_fields)  # keys in the documented order
