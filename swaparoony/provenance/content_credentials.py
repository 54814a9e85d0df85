"""Every picture the service makes says, verifiably, that it is an AI face swap: a signed C2PA manifest and IPTC XMP.

The manifest holds what the picture is and which software made it, and names the destination portrait
as its parent. Nothing of the person who uploaded goes in: not the upload's bytes, file name or
metadata, and no thumbnails at all (a thumbnail of the result would be a picture of them).
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import c2pa

from ..errors import SigningFailed
from ..settings import Settings
from . import signing_identity, xmp_packet
from .signing_identity import SigningIdentity
from .watermark import DESCRIPTION as WATERMARK_DESCRIPTION

logger = logging.getLogger(__name__)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
"""IPTC: a composite with at least one element made by a trained model; the swapped face is."""
CLAIM_GENERATOR = "swaparoony"
SIGNING_SETTINGS: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
"""No thumbnails (of a person's face); no re-reading each file just signed (it doubled the cost: 3.3 to 1.9 ms for a
1280x1280 JPEG; the tests read every route's and format's output back instead)."""
PARENT_LABEL = "destination"
WATERMARKED = {"action": "c2pa.watermarked.unbound", "description": WATERMARK_DESCRIPTION}
"""C2PA 2.3's action for a watermark that makes no soft binding: RivaGAN has no entry on C2PA's soft-binding algorithm
list, so there is no soft-binding assertion to point to, and c2pa rejects the plain `c2pa.watermarked` without one
(assertion.action.softBindingMissing)."""


@dataclass(frozen=True)
class Parent:
    """A destination portrait, prepared once as the parent ingredient of every result made from it.

    The archive is c2pa's single-ingredient archive: the file's title, format, instance id and any
    credentials it carries. Reading that from a 3 MB PNG on every request cost 18 ms; from this, nothing.
    """

    name: str
    archive: bytes = b""


@dataclass(frozen=True)
class Provenance:
    """What one picture is, in a sentence, and the portrait it was made from where it has one."""

    description: str
    parent: Parent | None = None
    watermarked: bool = False
    """Whether its pixels carry the watermark (provenance/watermark.py): the manifest then says so."""


class Marker(Protocol):
    """Adds the marks to an encoded picture."""

    def parent(self, name: str, data: bytes, media_type: str) -> Parent | None:
        """The destination file prepared as a parent ingredient; None if it cannot be one."""
        ...

    def mark(self, data: bytes, media_type: str, provenance: Provenance) -> bytes: ...


class ContentCredentials:
    """Writes the XMP packet, then signs a C2PA manifest over the whole file; safe to call from many threads."""

    def __init__(self, identity: SigningIdentity, version: str) -> None:
        self.identity = identity
        self.version = version
        self.xmp = xmp_packet.packet(DIGITAL_SOURCE_TYPE, f"{CLAIM_GENERATOR} {version}")
        self._per_thread = threading.local()  # c2pa's signer and context objects are not shared across threads

    def parent(self, name: str, data: bytes, media_type: str) -> Parent | None:
        """Read the destination file once into an ingredient archive; a file c2pa cannot read gets no parent."""
        try:
            builder = c2pa.Builder.from_json({}, context=self._context())
            builder.add_ingredient({"title": name, "relationship": "parentOf", "label": PARENT_LABEL},
                                   media_type, io.BytesIO(data))
            archive = io.BytesIO()
            builder.write_ingredient_archive(PARENT_LABEL, archive)
        except c2pa.C2paError as exc:
            logger.warning("destination %s cannot be named as the parent in its results' credentials: %s", name, exc)
            return None
        return Parent(name, archive.getvalue())

    def mark(self, data: bytes, media_type: str, provenance: Provenance) -> bytes:
        """The file with both marks; SigningFailed if it cannot be signed, so it is never sent unmarked."""
        try:
            builder = c2pa.Builder.from_json(self._manifest(provenance), context=self._context())
            if provenance.parent is not None:
                builder.add_ingredient_from_archive(io.BytesIO(provenance.parent.archive))
            signed = io.BytesIO()
            builder.sign(self._signer(), media_type, io.BytesIO(xmp_packet.with_xmp(data, media_type, self.xmp)), signed)
        except c2pa.C2paError as exc:
            logger.error("signing a %s picture failed: %s", media_type, exc)
            raise SigningFailed("The picture could not be signed with its content credentials, so it was not sent; "
                                "the server log says why.") from exc
        return signed.getvalue()

    def _manifest(self, provenance: Provenance) -> dict[str, Any]:
        made = {"digitalSourceType": DIGITAL_SOURCE_TYPE, "description": provenance.description}
        actions = (
            [{"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_LABEL]}}, {"action": "c2pa.edited", **made}]
            if provenance.parent is not None else [{"action": "c2pa.created", **made}]
        )
        if provenance.watermarked:
            actions.append(WATERMARKED)
        return {
            "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": self.version}],
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
        }

    def _signer(self) -> c2pa.Signer:
        if not hasattr(self._per_thread, "signer"):
            info = c2pa.C2paSignerInfo(self.identity.algorithm, self.identity.chain, self.identity.private_key, None)
            self._per_thread.signer = c2pa.Signer.from_info(info)
        return self._per_thread.signer

    def _context(self) -> c2pa.Context:
        if not hasattr(self._per_thread, "context"):
            self._per_thread.context = c2pa.Context.from_dict(SIGNING_SETTINGS)
        return self._per_thread.context


class XmpOnly:
    """The IPTC XMP packet without a signed manifest, for deployments that cannot sign."""

    def __init__(self, version: str) -> None:
        self.xmp = xmp_packet.packet(DIGITAL_SOURCE_TYPE, f"{CLAIM_GENERATOR} {version}")

    def parent(self, name: str, data: bytes, media_type: str) -> Parent | None:
        return None

    def mark(self, data: bytes, media_type: str, provenance: Provenance) -> bytes:
        return xmp_packet.with_xmp(data, media_type, self.xmp)


class Unmarked:
    """No marks at all (SWAPAROONY_CONTENT_CREDENTIALS=off)."""

    def parent(self, name: str, data: bytes, media_type: str) -> Parent | None:
        return None

    def mark(self, data: bytes, media_type: str, provenance: Provenance) -> bytes:
        return data


def from_settings(settings: Settings, version: str) -> Marker:
    """The marker the operator chose; the signing identity is loaded (or made) now, not on a request."""
    if settings.content_credentials == "off":
        logger.warning("content credentials are off: pictures do not say they are AI face swaps (see the README)")
        return Unmarked()
    if settings.content_credentials == "xmp":
        logger.warning("content credentials: IPTC XMP only, no signed C2PA manifest")
        return XmpOnly(version)
    if settings.signing_cert is not None and settings.signing_key is not None:
        identity = signing_identity.load(settings.signing_cert, settings.signing_key)
    else:
        identity = signing_identity.local(settings.state_dir)
    logger.info("content credentials signed as %s, certificate SHA-256 %s", identity.subject, identity.fingerprint)
    return ContentCredentials(identity, version)
