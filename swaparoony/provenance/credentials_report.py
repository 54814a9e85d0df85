"""Reads a picture's marks back, for `swaparoony inspect` and for anyone checking what the service made."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from PIL import Image

from ..imaging.clip_codec import is_mp4

from . import xmp_packet
from .content_credentials import CLAIM_GENERATOR


@dataclass(frozen=True)
class CredentialsReport:
    """What a file says about itself."""

    media_type: str
    claim_generator: str | None
    """Name and version of the software that signed the active manifest; None without a manifest."""
    manifest_source_types: tuple[str, ...]
    xmp_source_type: str | None
    signer: str | None
    validation: str | None
    """c2pa's verdict: Valid, Invalid or Trusted; None without a manifest."""
    trusted: bool
    problems: tuple[str, ...]

    @property
    def from_swaparoony(self) -> bool:
        """Whether Swaparoony signed it and the signature and hashes hold (trusted or not)."""
        return bool(self.claim_generator and self.claim_generator.startswith(CLAIM_GENERATOR + " ")
                    and self.validation in ("Valid", "Trusted"))

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        return [
            f"content credentials: {'Swaparoony' if self.from_swaparoony else 'none from Swaparoony'}"
            + (f" (signed by software {self.claim_generator})" if self.claim_generator else ""),
            f"digital source type (C2PA): {', '.join(self.manifest_source_types) or 'none'}",
            f"digital source type (XMP): {self.xmp_source_type or 'none'}",
            f"signer: {self.signer or 'none'}",
            f"signature: {self._verdict()}",
            *(f"problem: {problem}" for problem in self.problems),
        ]

    def _verdict(self) -> str:
        if self.validation is None:
            return "no manifest"
        if self.validation == "Invalid":
            return "INVALID"
        return "valid, trusted signer" if self.trusted else "valid, untrusted signer (its CA is not in your trust list)"


def read(path: Path, trust_anchors: bytes | None = None) -> CredentialsReport:
    """Both marks of the file at path; trust_anchors (PEM CA certificates) decide whether the signer is trusted."""
    data = path.read_bytes()
    if is_mp4(data):  # a swapped clip
        media_type, xmp = "video/mp4", None
    else:
        with Image.open(io.BytesIO(data)) as image:
            media_type = Image.MIME.get(image.format or "", "application/octet-stream")
            xmp = image.info.get("xmp") or image.info.get(xmp_packet.PNG_XMP_KEYWORD.decode())
    if not xmp and b"<?xpacket" in data:  # where Pillow does not read it: MP4's uuid box, GIF's extension
        xmp = data[data.index(b"<?xpacket"):]
    store = _manifest_store(data, media_type, trust_anchors)
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    statuses = store.get("validation_status") or []
    generator = next(iter(active.get("claim_generator_info") or []), None)
    return CredentialsReport(
        media_type=media_type,
        claim_generator=f"{generator.get('name')} {generator.get('version', '')}".strip() if generator else None,
        manifest_source_types=tuple(dict.fromkeys(
            action["digitalSourceType"] for action in _actions(active) if "digitalSourceType" in action
        )),
        xmp_source_type=xmp_packet.digital_source_type(xmp),
        signer=_signer(active.get("signature_info")),
        validation=store.get("validation_state") if active else None,
        trusted=store.get("validation_state") == "Trusted",
        problems=tuple(f"{s['code']}: {s.get('explanation', '')}" for s in statuses
                       if s.get("code") != "signingCredential.untrusted"),
    )


def _manifest_store(data: bytes, media_type: str, trust_anchors: bytes | None) -> dict[str, Any]:
    settings: dict[str, Any] = {"verify": {"verify_trust": trust_anchors is not None}}
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": trust_anchors.decode()}
    try:
        with c2pa.Reader(media_type, io.BytesIO(data), context=c2pa.Context.from_dict(settings)) as reader:
            store = json.loads(reader.json())
            store["validation_state"] = reader.get_validation_state()
            return store
    except c2pa.C2paError.ManifestNotFound:
        return {}


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [action for assertion in manifest.get("assertions", []) if assertion.get("label", "").startswith("c2pa.actions")
            for action in assertion.get("data", {}).get("actions", [])]


def _signer(info: dict[str, Any] | None) -> str | None:
    if not info:
        return None
    return ", ".join(part for part in (info.get("common_name"), info.get("issuer")) if part) or None
