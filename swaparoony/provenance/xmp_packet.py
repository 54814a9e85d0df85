"""An XMP packet stating the IPTC digital source type, written into JPEG, PNG, WebP, GIF and MP4 files without
re-encoding.

For readers that do not parse C2PA: IPTC's `Iptc4xmpExt:DigitalSourceType` is what photo libraries and
social platforms look for. The packet goes in each format's standard place (JPEG APP1, PNG iTXt, WebP's
`XMP ` chunk, GIF's `XMP DataXMP` application extension, MP4's XMP `uuid` box), which the C2PA signer later keeps
as it is.
"""

from __future__ import annotations

import re
import struct
import zlib
from xml.sax.saxutils import escape

JPEG_XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
WEBP_XMP_FLAG = 0x04
MP4_XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
GIF_XMP_TRAILER = bytes([1, *range(255, -1, -1), 0])
"""XMP's "magic trailer" in GIF: raw packet bytes read as sub-blocks land in it and end the extension."""
SOURCE_TYPE = re.compile(rb"<Iptc4xmpExt:DigitalSourceType>([^<]*)</Iptc4xmpExt:DigitalSourceType>")


def packet(digital_source_type: str, creator_tool: str) -> bytes:
    """The XMP packet: the digital source type and the software that made the file, nothing about its people."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<Iptc4xmpExt:DigitalSourceType>{escape(digital_source_type)}</Iptc4xmpExt:DigitalSourceType>"
        f"<xmp:CreatorTool>{escape(creator_tool)}</xmp:CreatorTool>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="r"?>'
    ).encode()


def with_xmp(data: bytes, media_type: str, xmp: bytes) -> bytes:
    """The file with the packet added; it must not carry one yet (the service's encoders write none)."""
    insert = {"image/jpeg": _jpeg, "image/png": _png, "image/webp": _webp, "image/gif": _gif, "video/mp4": _mp4}[media_type]
    return insert(data, xmp)


def digital_source_type(xmp: bytes | str | None) -> str | None:
    """The `Iptc4xmpExt:DigitalSourceType` an XMP packet states, if any."""
    if not xmp:
        return None
    found = SOURCE_TYPE.search(xmp.encode() if isinstance(xmp, str) else xmp)
    return found.group(1).decode() if found else None


def _jpeg(data: bytes, xmp: bytes) -> bytes:
    """An APP1 segment right after SOI and the JFIF APP0 segment, where readers expect it."""
    body = JPEG_XMP_NAMESPACE + xmp
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    at = 2
    if data[2:4] == b"\xff\xe0":
        at += 2 + struct.unpack(">H", data[4:6])[0]
    return data[:at] + segment + data[at:]


def _png(data: bytes, xmp: bytes) -> bytes:
    """An uncompressed iTXt chunk right after IHDR (signature 8 bytes, IHDR 25)."""
    body = PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp  # keyword NUL, no compression, no language, no translation
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body))
    return data[:33] + chunk + data[33:]


def _webp(data: bytes, xmp: bytes) -> bytes:
    """A simple (VP8/VP8L) file becomes an extended (VP8X) one with the XMP flag and an `XMP ` chunk at the end; an
    extended one (an animation) gets the flag and the chunk."""
    chunk = b"XMP " + struct.pack("<I", len(xmp)) + xmp + b"\x00" * (len(xmp) % 2)
    if data[12:16] == b"VP8X":
        body = data[8:20] + bytes([data[20] | WEBP_XMP_FLAG]) + data[21:] + chunk
        return b"RIFF" + struct.pack("<I", len(body)) + body
    width, height = _webp_size(data)
    header = bytes([WEBP_XMP_FLAG, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(header)) + header + data[12:] + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_size(data: bytes) -> tuple[int, int]:
    """Width and height from a simple WebP's bitstream header."""
    kind = data[12:16]
    if kind == b"VP8 ":  # frame tag (3 bytes), start code (3), then 14-bit width and height
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":  # signature byte, then width - 1 and height - 1 in 14 bits each
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ValueError(f"not a simple WebP file (chunk {kind!r})")


def _gif(data: bytes, xmp: bytes) -> bytes:
    """An application extension right before the trailer byte (0x3B) that ends every GIF."""
    return data[:-1] + b"\x21\xff\x0bXMP DataXMP" + xmp + GIF_XMP_TRAILER + data[-1:]


def _mp4(data: bytes, xmp: bytes) -> bytes:
    """A top-level `uuid` box with XMP's UUID, after the others (no offset inside the file moves)."""
    return data + struct.pack(">I", 8 + 16 + len(xmp)) + b"uuid" + MP4_XMP_UUID + xmp
