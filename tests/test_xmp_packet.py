"""The XMP packet goes into each format's standard place, and the picture still decodes to the same pixels."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from PIL import Image

from swaparoony.provenance import xmp_packet

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
IPTC_EXT = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
ENCODINGS = {
    "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90], "image/jpeg"),
    "png": (".png", [], "image/png"),
    "webp lossy": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 90], "image/webp"),
    "webp lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], "image/webp"),
}


def xmp_of(data: bytes) -> bytes:
    """The XMP packet as Pillow finds it, in whichever place the format keeps it."""
    with Image.open(io.BytesIO(data)) as image:
        packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    assert packet, "no XMP packet found"
    return packet.encode() if isinstance(packet, str) else packet


@pytest.mark.parametrize("kind", ENCODINGS)
def test_the_packet_is_found_where_readers_look_and_the_pixels_are_untouched(kind: str) -> None:
    suffix, params, media_type = ENCODINGS[kind]
    frame = np.random.default_rng(1).integers(0, 255, (121, 203, 3), dtype=np.uint8)  # odd sizes: WebP's 24-bit fields
    plain = cv2.imencode(suffix, frame, params)[1].tobytes()
    marked = xmp_packet.with_xmp(plain, media_type, xmp_packet.packet(SOURCE_TYPE, "swaparoony 1.0"))

    description = ET.fromstring(xmp_of(marked).split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0]).find(".//{*}Description")
    assert description is not None and description.find(f"{IPTC_EXT}DigitalSourceType").text == SOURCE_TYPE
    assert xmp_packet.digital_source_type(xmp_of(marked)) == SOURCE_TYPE
    for decoder in (lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR),
                    lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("RGB"))[..., ::-1]):
        assert np.array_equal(decoder(marked), decoder(plain))
